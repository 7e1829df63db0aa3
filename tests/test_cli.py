"""The command line, run as a user runs it."""

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared_data

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
    assert table["loo loss (Newton)"][1] > 3 * table["random"][1]
    assert table["n_flipped"] == round(0.1 * table["n_train"])


# --------------------------------------------------------------------------------------
# skinfluence rank: run as a user runs it, in a subprocess
# --------------------------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[1]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _start(*args):
    return subprocess.Popen([sys.executable, "-m", "skinfluence.cli", "rank", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())


def _run(*args):
    proc = _start(*args)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def _digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _have(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def test_rank_finds_flipped_labels_in_spambase(tmp_path):
    """End to end on real data: 10% of the labels flipped, the ranking surfaces them."""
    raw = pd.read_csv(shared_data("spambase", "spambase.data.gz"), header=None)
    flipped = np.random.default_rng(0).choice(len(raw), size=len(raw) // 10, replace=False)
    raw.iloc[flipped, 57] = 1 - raw.iloc[flipped, 57]
    data = tmp_path / "spam.csv"
    raw.to_csv(data, index=False, header=False)
    before = _digest(data)
    out = tmp_path / "ranked.csv"
    code, stdout, stderr = _run(data, "--no-header", "--target", "57", "-o", out)
    assert code == 0, stderr
    assert _digest(data) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ranked.csv", "spam.csv"]
    ranked = pd.read_csv(out)
    assert list(ranked.columns[:4]) == ["rank", "row", "self_influence", "predicted"]
    assert ranked["rank"].tolist() == list(range(1, len(raw) + 1))
    assert sorted(ranked["row"]) == list(range(len(raw)))
    assert ranked["self_influence"].is_monotonic_increasing
    assert (ranked["self_influence"] <= 0).all()
    # every written row is the input row it names, values and (flipped) label
    written = ranked.iloc[:, 4:].to_numpy()
    np.testing.assert_allclose(written, raw.to_numpy()[ranked["row"]])
    # a random tenth holds 10% of the flips; the top tenth by self-influence far more
    top = ranked["row"].to_numpy()[: len(raw) // 10]
    assert np.isin(top, flipped).sum() > 3 * 0.1 * len(flipped)


def test_rank_by_influence_on_a_held_out_split_of_adult(tmp_path):
    """Mixed types and missing values, held-out ranking, checked against the library."""
    from sklearn.model_selection import train_test_split

    from skinfluence._rank import build_pipeline
    from skinfluence.linear_model import LogisticRegression

    source = pd.read_csv(shared_data("adult", "adult.data.gz"), skipinitialspace=True,
                         na_values="?", nrows=1200)
    data = tmp_path / "adult.csv"
    source.to_csv(data, index=False, na_rep="?")
    before = _digest(data)
    out = tmp_path / "ranked.csv.gz"
    code, _, stderr = _run(data, "--target", "Y", "--na-values", "?", "--test-size", "0.25",
                           "--top", "40", "-o", out, "--seed", "3")
    assert code == 0, stderr
    assert _digest(data) == before
    ranked = pd.read_csv(out)  # gzip-compressed, as its name asks
    assert len(ranked) == 40 and ranked["influence_on_test"].is_monotonic_decreasing
    # the same split and pipeline through the Python API give the same scores
    frame = pd.read_csv(data, skipinitialspace=True, na_values="?")
    y = frame.pop("Y")
    numeric = frame.select_dtypes("number").columns.tolist()
    categorical = [c for c in frame.columns if c not in numeric]
    for col in categorical:
        frame[col] = frame[col].astype(str).where(frame[col].notna(), np.nan).astype(object)
    X_tr, X_te, y_tr, y_te = train_test_split(frame, y, test_size=0.25, random_state=3,
                                              stratify=y)
    pipe = build_pipeline(numeric, categorical, LogisticRegression(
        C=1.0, tol=1e-8, max_iter=10_000, solver="newton-cholesky")).fit(X_tr, y_tr)
    expected = pipe.influence(X_te, y_te).mean(axis=1).sort_values(ascending=False)
    assert ranked["row"].tolist() == expected.index[:40].tolist()
    np.testing.assert_allclose(ranked["influence_on_test"], expected.iloc[:40], rtol=1e-6)
    # the original columns come back as read, missing values included
    shown = ranked.set_index("row")[source.columns]
    pd.testing.assert_frame_equal(shown.reset_index(drop=True),
                                  source.loc[shown.index].reset_index(drop=True),
                                  check_dtype=False)


def test_rank_writes_to_stdout_and_shows_progress_on_request(tmp_path):
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True).frame
    data = tmp_path / "wine.csv"
    wine.to_csv(data, index=False)
    code, stdout, stderr = _run(data, "--target", "target", "--top", "3", "--progress", "on")
    assert code == 0, stderr
    assert len(stdout.strip().splitlines()) == 4  # header + 3 rows
    assert "self-influence" in stderr and "1/1" in stderr  # tqdm's bar or the fallback


def test_progress_falls_back_to_a_counter_without_tqdm(monkeypatch, capsys):
    from skinfluence._rank import _Progress

    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now fails
    bar = _Progress(3, "scoring", enabled=True)
    for _ in range(3):
        bar.update()
    bar.close()
    err = capsys.readouterr().err
    assert err == "\rscoring: 0/3\rscoring: 1/3\rscoring: 2/3\rscoring: 3/3\n"
    silent = _Progress(3, "scoring", enabled=False)
    silent.update()
    silent.close()
    assert capsys.readouterr().err == ""


def _write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def _small_table(n=12, classes=("a", "b")):
    rows = [f"{i},{i % 3}.5,{classes[i % len(classes)]},{i * 1.5}" for i in range(n)]
    return "x,z,label,value\n" + "\n".join(rows) + "\n"


# (case id, files to create {name: content}, arguments, expected phrase)
# the cases run as subprocesses; the rest in-process through main() (same code,
# without paying an interpreter start each)
SUBPROCESS_CASES = [
    ("missing-file", {}, ["nope.csv", "--target", "y"], "nope.csv: no such file"),
    ("missing-column", {"t.csv": _small_table()}, ["t.csv", "--target", "y"],
     "column 'y' not found; the columns are: x, z, label, value"),
    ("unreadable-binary", {"t.csv": b"\xff\xfe\x00garbage\x80\x81\n\xc3\x28,\xa0\n"},
     ["t.csv", "--target", "y"], "cannot read it as text"),
    ("empty-file", {"t.csv": ""}, ["t.csv", "--target", "a"], "the file is empty"),
    ("one-class", {"t.csv": _small_table(classes=("a",))}, ["t.csv", "--target", "label"],
     "target 'label' has only one class ('a')"),
    ("text-target-to-regression", {"t.csv": _small_table()},
     ["t.csv", "--target", "label", "--model", "ridge"],
     "target 'label' is not numeric (e.g. 'a')"),
    ("too-few-rows", {"t.csv": _small_table(5)}, ["t.csv", "--target", "label"],
     "too few rows: 5 with a target (need at least 10)"),
    ("output-is-input", {"t.csv": _small_table()},
     ["t.csv", "--target", "label", "-o", "t.csv"], "would overwrite the input"),
]
IN_PROCESS_CASES = [
    ("ragged-rows", {"t.csv": "a,b\n1,2\n3,4,5,6\n"}, ["t.csv", "--target", "a"],
     "cannot parse it as a table (Error tokenizing data"),
    ("directory", {"d/t.csv": "a\n"}, ["d", "--target", "a"], "is a directory"),
    ("blank-lines", {"t.csv": "\n\n"}, ["t.csv", "--target", "a"], "the file holds no table"),
    ("header-only", {"t.csv": "x,label\n"}, ["t.csv", "--target", "label"],
     "too few rows: 0 with a target (need at least 10)"),
    ("continuous-target-to-classifier", {"t.csv": _small_table()},
     ["t.csv", "--target", "value"], "looks continuous; use --model ridge"),
    ("output-directory-missing", {"t.csv": _small_table()},
     ["t.csv", "--target", "label", "-o", "no/where.csv"], "does not exist"),
    ("unknown-ignored-column", {"t.csv": _small_table()},
     ["t.csv", "--target", "label", "--ignore", "zz"], "--ignore names unknown column(s): zz"),
]
if not _have("pyarrow"):
    IN_PROCESS_CASES.append(("parquet-without-pyarrow", {"t.parquet": b"PAR1\x00\x00PAR1"},
                             ["t.parquet", "--target", "a"], "reading Parquet needs pyarrow"))
if not _have("skinfluence.svm"):
    SUBPROCESS_CASES.append(("model-not-available", {"t.csv": _small_table()},
                             ["t.csv", "--target", "label", "--model", "svm"],
                             "--model svm (linear SVM) is not available in this version"))


def _lay_out(root, files, args):
    """Create the case's files under root; return the arguments with paths under root."""
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        _write(root, name, content)
    digests = {p: _digest(p) for p in root.rglob("*") if p.is_file()}
    tops = {Path(name).parts[0] for name in files} | {"nope.csv", "no"}
    arguments = [str(root / a) if Path(a).parts and Path(a).parts[0] in tops else a
                 for a in args]
    return arguments, digests


@pytest.fixture(scope="module")
def bad_input_runs(tmp_path_factory):
    """The subprocess cases, a few at a time (each is a fresh interpreter)."""
    results, pending = {}, list(SUBPROCESS_CASES)
    width = max(1, os.cpu_count() or 1)
    while pending:
        batch, pending = pending[:width], pending[width:]
        started = []
        for case, files, args, _ in batch:
            root = tmp_path_factory.mktemp(case)
            arguments, digests = _lay_out(root, files, args)
            started.append((case, _start(*arguments), root, digests))
        for case, proc, root, digests in started:
            out, err = proc.communicate(timeout=300)
            results[case] = (proc.returncode, out, err, root, digests)
    return results


def _check_one_line_error(code, out, err, expected, root, digests):
    assert code == 1, err
    assert "Traceback" not in err and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skinfluence: error: "), err
    assert expected in lines[0]
    for path, digest in digests.items():
        assert _digest(path) == digest
    assert sorted(p for p in root.rglob("*") if p.is_file()) == sorted(digests)


@pytest.mark.parametrize("case, expected", [(c[0], c[3]) for c in SUBPROCESS_CASES],
                         ids=[c[0] for c in SUBPROCESS_CASES])
def test_bad_input_exits_with_one_line_and_leaves_the_input_alone(bad_input_runs, case,
                                                                  expected):
    code, out, err, root, digests = bad_input_runs[case]
    _check_one_line_error(code, out, err, expected, root, digests)


@pytest.mark.parametrize("case, files, args, expected", IN_PROCESS_CASES,
                         ids=[c[0] for c in IN_PROCESS_CASES])
def test_more_bad_input_through_main(tmp_path, capsys, case, files, args, expected):
    from skinfluence.cli import main

    arguments, digests = _lay_out(tmp_path, files, args)
    code = main(["rank", *arguments])
    captured = capsys.readouterr()
    _check_one_line_error(code, captured.out, captured.err, expected, tmp_path, digests)


@pytest.mark.parametrize("model, target", [("svm", "label"), ("kernel", "label"),
                                           ("ridge", "value")])
def test_every_model_ranks_a_table(model, target, tmp_path):
    """Each --model fits its estimator and ranks every row (the table stays untouched)."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.sample(120, random_state=0)
    frame = frame.rename(columns={"target": "label"})
    frame["value"] = frame["mean radius"] * 2.0 + frame["mean texture"]
    data = tmp_path / "t.csv"
    frame.drop(columns="value" if target == "label" else "label").to_csv(data, index=False)
    before = _digest(data)
    code, out, err = _run(data, "--target", target, "--model", model, "--top", "5")
    assert code == 0, err
    ranked = pd.read_csv(io.StringIO(out))
    assert len(ranked) == 5 and ranked["row"].between(0, 119).all()
    assert _digest(data) == before


def test_parquet_round_trip_when_pyarrow_is_installed(tmp_path):
    pytest.importorskip("pyarrow")
    from sklearn.datasets import load_wine

    data = tmp_path / "wine.parquet"
    load_wine(as_frame=True).frame.to_parquet(data)
    out = tmp_path / "ranked.parquet"
    code, _, err = _run(data, "--target", "target", "-o", out)
    assert code == 0, err
    assert len(pd.read_parquet(out)) == 178
