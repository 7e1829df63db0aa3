"""Every gallery example runs to the end (slow suite), as the gallery build runs it.

Each ``examples/plot_*.py`` runs in a fresh interpreter with matplotlib's Agg backend, in
a scratch directory, with RuntimeWarnings as errors (as in the test suite), and, as
sphinx-gallery executes them, as code without a ``__file__``.  The examples read
../shared/data; without it they are skipped.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import shared_data

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("plot_*.py"))
#: run an example the way sphinx-gallery does: its code in a fresh namespace, no __file__
RUNNER = ("import sys; path = sys.argv[1]; "
          "exec(compile(open(path).read(), path, 'exec'), {'__name__': '__main__'})")


def test_there_are_examples():
    assert len(EXAMPLES) >= 6


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(example, tmp_path):
    data = shared_data()
    env = dict(os.environ, MPLBACKEND="Agg", SKINFLUENCE_DATA=str(data),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", RUNNER,
                           str(example)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{example.name} failed:\n{proc.stderr[-4000:]}"
