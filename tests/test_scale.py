"""Scale-out and bounded memory: any joblib backend, memory-mapped and dask inputs.

The engine's chunk boundaries depend only on the data and the memory budget, so a run
in threads or on a dask cluster must return the local run's numbers exactly
(``np.array_equal``, not a tolerance).
"""

import os
import pickle
import subprocess
import sys
import textwrap
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import joblib
import numpy as np
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

import skinfluence
from skinfluence import _influence
from skinfluence.linear_model import LogisticRegression
from skinfluence.objective import GLMObjective
from skinfluence.validation import loo_retrain

REPO = Path(__file__).resolve().parents[1]
#: a budget small enough that every method works in several chunks on these data
SMALL_BUDGET_MIB = 0.02


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    """Binary logistic problem, its fit, and the training rows as a memory-mapped file."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1500, 8))
    y = (X[:, 0] - X[:, 1] + rng.standard_normal(1500) > 0).astype(int)
    X_test, y_test = X[:6] + 0.1, y[:6]
    clf = SkLogisticRegression(C=0.5, tol=1e-10, max_iter=1000).fit(X, y)
    path = tmp_path_factory.mktemp("scale") / "X.npy"
    np.save(path, X)
    X_mm = np.load(path, mmap_mode="r")
    return clf, X, X_mm, y, X_test, y_test


def _all_results(clf, X, y, X_test, y_test, **options):
    """Every chunked computation of the engine, in several chunks."""
    engine = skinfluence.explain(clf, X, y, working_memory=SMALL_BUDGET_MIB, **options)
    # an iterative solver pays one solve per row for leverages: fewer rows
    rows = np.arange(0, 1500, 30) if options.get("solver") == "cg" else None
    return {
        "influence": engine.influence(X_test, y_test),
        "influence_subset": engine.influence(X_test, y_test, train_indices=[7, 1400, 3]),
        "self_influence": engine.self_influence(train_indices=rows),
        "loo_newton": engine.loo_effect(X_test, y_test, method="newton", train_indices=rows),
        "loo_raw": engine.loo_raw_predictions(train_indices=rows),
        "loo_params": engine.loo_params(np.arange(0, 1500, 7), method="newton"),
        "perturbation": engine.perturbation_influence(X_test[:2], y_test[:2]),
    }


def _assert_identical(left: dict, right: dict):
    assert left.keys() == right.keys()
    for name in left:
        assert np.array_equal(left[name], right[name]), (
            name, np.abs(left[name] - right[name]).max())


def test_chunks_do_not_depend_on_n_jobs(problem):
    clf, X, _, y, X_test, y_test = problem
    engine = skinfluence.explain(clf, X, y, working_memory=SMALL_BUDGET_MIB)
    engine.fit()
    chunks = engine._row_chunks(slice(None), 64)
    assert len(chunks) >= 5  # the fixture's budget does split the work
    engine.n_jobs = 4
    assert [c[0] for c in engine._row_chunks(slice(None), 64)] == [c[0] for c in chunks]


def test_threads_give_the_serial_results(problem):
    clf, X, _, y, X_test, y_test = problem
    serial = _all_results(clf, X, y, X_test, y_test)
    with joblib.parallel_backend("threading"):
        threaded = _all_results(clf, X, y, X_test, y_test, n_jobs=2)
    _assert_identical(serial, threaded)


def test_cg_columns_in_threads_match_serial(problem):
    clf, X, _, y, X_test, y_test = problem
    serial = skinfluence.explain(clf, X, y, solver="cg").influence(X_test, y_test)
    threaded = skinfluence.explain(clf, X, y, solver="cg", n_jobs=2).influence(X_test, y_test)
    assert np.array_equal(serial, threaded)


def test_concurrent_callers_share_one_estimator_safely(cancer):
    """Threads asking one fitted estimator at once: one factorization, same answers."""
    X, y, Xt, yt = cancer
    clf = LogisticRegression(C=0.5, tol=1e-10, max_iter=5000).fit(X, y)
    expected = clf.influence(Xt, yt)
    fresh = LogisticRegression(C=0.5, tol=1e-10, max_iter=5000).fit(X, y)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: fresh.influence(Xt, yt, n_jobs=2), range(8)))
    for result in results:
        assert np.array_equal(result, expected)


def test_memory_mapped_rows_match_in_memory_rows(problem):
    clf, X, X_mm, y, X_test, y_test = problem
    engine = skinfluence.explain(clf, X_mm, y, working_memory=SMALL_BUDGET_MIB)
    assert engine.objective.design.streamed
    streamed = _all_results(clf, X_mm, y, X_test, y_test)
    in_memory = _all_results(clf, X, y, X_test, y_test)
    for name in streamed:
        # the same rows, summed in other chunks: equal to rounding
        np.testing.assert_allclose(streamed[name], in_memory[name], rtol=1e-9,
                                   atol=1e-12 * np.abs(in_memory[name]).max(), err_msg=name)


def test_memory_mapped_rows_are_pickled_by_file_name(problem):
    clf, X, X_mm, y, X_test, y_test = problem
    engine = skinfluence.explain(clf, X_mm, y)
    expected = engine.influence(X_test, y_test)
    payload = pickle.dumps(engine)
    # the factor and per-row vectors travel; the 96 kB of rows do not
    assert len(payload) < X.nbytes
    restored = pickle.loads(payload)
    assert restored.objective.design.streamed
    assert np.array_equal(restored.influence(X_test, y_test), expected)


def test_streamed_input_is_validated_chunk_by_chunk(problem, tmp_path):
    clf, X, _, y, _, _ = problem
    bad = X.copy()
    bad[1234, 3] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        skinfluence.explain(clf, np.load(tmp_path / "bad.npy", mmap_mode="r"), y)
    np.save(tmp_path / "narrow.npy", X[:, :5])
    with pytest.raises(ValueError, match="X has 5 features, but LogisticRegression is "
                                         "expecting 8 features"):
        skinfluence.explain(clf, np.load(tmp_path / "narrow.npy", mmap_mode="r"), y)


def test_a_dense_factorization_that_cannot_fit_is_refused_up_front(problem, monkeypatch):
    clf, X, _, y, X_test, y_test = problem
    monkeypatch.setattr(_influence, "available_memory_bytes", lambda: 1000.0)

    def no_pass(*args, **kwargs):
        raise AssertionError("the Hessian was built before the refusal")

    monkeypatch.setattr(GLMObjective, "hessian", no_pass)
    monkeypatch.setattr(GLMObjective, "gradient", no_pass)
    engine = skinfluence.explain(clf, X, y, solver="direct")
    with pytest.raises(MemoryError, match=r"solver='direct' needs a dense 9 x 9 Hessian.*"
                                          r"use solver='cg'"):
        engine.influence(X_test, y_test)
    with pytest.raises(MemoryError, match=r"solver='woodbury' needs a dense 1500 x 1500"):
        skinfluence.explain(clf, X, y, solver="woodbury").self_influence()


def test_auto_switches_to_cg_when_the_hessian_exceeds_the_budget():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 60))
    y = (X[:, 0] + rng.standard_normal(200) > 0).astype(int)
    clf = SkLogisticRegression(C=0.1, tol=1e-10, max_iter=1000).fit(X, y)
    budget = 8 * 61**2 / 2**20 / 2  # half the dense 61 x 61 Hessian
    engine = skinfluence.explain(clf, X, y, working_memory=budget)
    cg = engine.influence(X[:3], y[:3])
    assert engine.diagnostics_["solver"] == "cg"
    direct = skinfluence.explain(clf, X, y).influence(X[:3], y[:3])
    np.testing.assert_allclose(cg, direct, rtol=1e-6, atol=1e-9 * np.abs(direct).max())


def test_peak_memory_grows_with_the_chunk_not_the_file(tmp_path):
    """An 80 MB memory-mapped file explained with a 2 MiB budget stays far below 80 MB."""
    script = textwrap.dedent(f"""
        import numpy as np, sklearn
        from sklearn.linear_model import LogisticRegression
        import skinfluence

        n, d = 100_000, 100
        path = {str(tmp_path / "big.npy")!r}
        rng = np.random.default_rng(0)
        with open(path, "wb") as f:
            np.lib.format.write_array_header_2_0(
                f, {{"descr": "<f8", "fortran_order": False, "shape": (n, d)}})
            for start in range(0, n, 20_000):
                f.write(rng.standard_normal((20_000, d)).tobytes())
        X = np.load(path, mmap_mode="r")
        y = (np.arange(n) % 2).astype(float)
        clf = LogisticRegression().fit(np.asarray(X[:2000]), y[:2000])

        def rss(field):
            for line in open("/proc/self/status"):
                if line.startswith(field):
                    return int(line.split()[1]) * 1024

        try:  # reset the high-water mark to the current RSS
            open("/proc/self/clear_refs", "w").write("5")
        except OSError:
            pass
        before = rss("VmRSS:")
        with sklearn.config_context(working_memory=2):
            engine = skinfluence.explain(clf, X, y, convergence_tol=np.inf)
            engine.influence(X[:3], y[:3])
            engine.self_influence()
            engine.loo_effect(X[:2], y[:2], method="newton")
        print(before, rss("VmHWM:"))
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    before, peak = map(int, proc.stdout.split())
    file_bytes = 100_000 * 100 * 8
    # per-row state (y, raw, residual, curvature, weights, results: ~5 MB) plus a few
    # 2 MiB chunks; without giving pages back one pass alone would add 80 MB
    assert peak - before < 0.35 * file_bytes, (before, peak)


# --------------------------------------------------------------------------------------
# dask.distributed
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip(
        "distributed", reason="dask.distributed is not installed (pip install "
                              "'skinfluence[dask]'); the cluster run cannot be checked")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None, memory_limit="1GiB")
        client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_dask_cluster_gives_the_local_results(problem, dask_client):
    """Two worker processes: the engine and a memory-mapped file shipped, same numbers."""
    from distributed import get_task_stream

    clf, X, X_mm, y, X_test, y_test = problem
    local = {"memory": _all_results(clf, X, y, X_test, y_test),
             "memmap": _all_results(clf, X_mm, y, X_test, y_test),
             "cg": _all_results(clf, X, y, X_test, y_test, solver="cg")}
    rows = [0, 11, 700]
    local_loo = loo_retrain(clf, X, y, rows, X_test, y_test,
                            refit_params={"tol": 1e-12, "solver": "newton-cg"})
    with get_task_stream(dask_client) as stream, joblib.parallel_backend("dask"):
        remote = {"memory": _all_results(clf, X, y, X_test, y_test),
                  "memmap": _all_results(clf, X_mm, y, X_test, y_test),
                  "cg": _all_results(clf, X, y, X_test, y_test, solver="cg")}
        remote_loo = loo_retrain(clf, X, y, rows, X_test, y_test,
                                 refit_params={"tol": 1e-12, "solver": "newton-cg"})
    assert len(stream.data) > 20  # the chunks did run on the cluster
    for kind in local:
        _assert_identical(local[kind], remote[kind])
    assert np.array_equal(local_loo.loss_change, remote_loo.loss_change)
    assert np.array_equal(local_loo.coef_change, remote_loo.coef_change)


def test_dask_array_training_rows(problem):
    da = pytest.importorskip("dask.array", reason="dask is not installed")
    clf, X, _, y, X_test, y_test = problem
    X_dask = da.from_array(X, chunks=(400, 8))

    def results(X):
        engine = skinfluence.explain(clf, X, y, working_memory=0.2)
        return {"influence": engine.influence(X_test, y_test),
                "self_influence": engine.self_influence(),
                "loo_newton": engine.loo_effect(X_test, y_test, method="newton")}

    streamed, in_memory = results(X_dask), results(X)
    for name in streamed:
        np.testing.assert_allclose(streamed[name], in_memory[name], rtol=1e-9,
                                   atol=1e-12 * np.abs(in_memory[name]).max(), err_msg=name)


def test_passes_over_the_rows_allocate_a_chunk_not_a_copy():
    """squared_norms used to square the whole X at once (a full copy of the rows)."""
    import tracemalloc

    from skinfluence.losses import BinaryLogistic
    from skinfluence.objective import LinearDesign

    rng = np.random.default_rng(0)
    X = rng.standard_normal((200_000, 20))  # 32 MB
    y = (X[:, 0] > 0).astype(float)
    weights = rng.random(200_000)
    with sklearn.config_context(working_memory=1):
        objective = GLMObjective(BinaryLogistic(), LinearDesign(X), y, np.zeros((1, 21)),
                                 penalty=1.0)
        for name, work in [("squared_norms", lambda: objective.design.squared_norms(weights)),
                           ("gram", lambda: objective.design.gram(weights)),
                           ("hessian_diagonal", objective.hessian_diagonal),
                           ("hessp", lambda: objective.hessp(np.ones(21)))]:
            tracemalloc.start()
            work()
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            # a few 1 MiB chunks plus per-row vectors (200,000 x 8 bytes each)
            assert peak < X.nbytes / 4, (name, peak)
