"""The command line, run as a user runs it."""

import subprocess
import sys

from skinfluence.cli import label_flip_demo


def test_demo_runs_and_prints_the_table():
    proc = subprocess.run([sys.executable, "-m", "skinfluence.cli", "demo"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "influence (self)" in proc.stdout and "random" in proc.stdout


def test_demo_influence_beats_random():
    table = label_flip_demo(dataset="breast_cancer", random_state=1)
    # a random 10% holds 10% of the flips in expectation; influence finds far more
    assert table["influence (self)"][1] > 3 * table["random"][1]
    assert table["n_flipped"] == round(0.1 * table["n_train"])
