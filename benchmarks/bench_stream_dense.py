"""10,000,000 x 100 dense rows streamed from disk: influence with bounded memory.

The training rows are a float64 ``.npy`` file (8 GB) opened with
``np.load(..., mmap_mode="r")``; nothing reads it whole.  The benchmark

1. fits a binary logistic model ``C sum_i l_i + ||w||^2 / 2`` (``C = 1``) by streamed
   Newton steps that use the engine's own objective (each step: one pass for the raw
   predictions, one for the gradient, one for the Hessian; a 101 x 101 solve), started
   from scikit-learn's fit on the first 200,000 rows, until ``max|grad J| / n <
   1e-10``: a stationary point of the objective on all 10M rows, which fitting
   scikit-learn on the whole file in memory could not reach within the memory bound;
2. hands those coefficients to a plain ``sklearn.linear_model.LogisticRegression``
   (as if fitted elsewhere) and explains it with :func:`skinfluence.explain` on the
   memory-mapped rows (validation chunk by chunk), then times, for 10 test points,
   ``influence``, ``self_influence`` and ``loo_effect(method="newton")``;
3. measures the cost of one chunk of training rows (the unit of distributed work) and
   the bytes a worker receives (the pickled engine: the factor and per-row vectors;
   the rows travel by file name).

Peak RSS is the process' high-water mark (``VmHWM``), which counts mapped file pages;
the data generation runs in its own process first.  Timings are wall-clock on this
machine (2 cores, shared): compare only numbers from the same run.

Usage::

    python benchmarks/bench_stream_dense.py generate     # writes 8 GB under /tmp
    python benchmarks/bench_stream_dense.py run          # the benchmark
    python benchmarks/bench_stream_dense.py run --blas-threads 1   # on a busy machine
    python benchmarks/bench_stream_dense.py run --blas-threads 1 --dask   # + LocalCluster
    python benchmarks/bench_stream_dense.py run --rows 1000000   # a smaller smoke run
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from pathlib import Path

import numpy as np

DATA = Path("/tmp/skinfluence_bench")
N_ROWS, N_FEATURES, N_TEST, C = 10_000_000, 100, 10, 1.0
GENERATE_CHUNK = 250_000


def _paths(n_rows: int) -> tuple[Path, Path, Path]:
    stem = DATA / f"dense_{n_rows}x{N_FEATURES}"
    return stem.with_suffix(".X.npy"), stem.with_suffix(".y.npy"), stem.with_suffix(".test.npz")


def rss_bytes(field: str = "VmHWM:") -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return -1


def generate(n_rows: int, seed: int = 0) -> None:
    """Rows ~ N(0, I), labels from a logistic model; written chunk by chunk."""
    DATA.mkdir(parents=True, exist_ok=True)
    x_path, y_path, test_path = _paths(n_rows)
    rng = np.random.default_rng(seed)
    beta = rng.standard_normal(N_FEATURES) / np.sqrt(N_FEATURES) * 2.0
    intercept = -0.5
    labels = np.empty(n_rows, dtype=np.int8)
    start = time.perf_counter()
    with open(x_path, "wb") as handle:
        np.lib.format.write_array_header_2_0(
            handle, {"descr": "<f8", "fortran_order": False, "shape": (n_rows, N_FEATURES)})
        for lo in range(0, n_rows, GENERATE_CHUNK):
            rows = rng.standard_normal((min(GENERATE_CHUNK, n_rows - lo), N_FEATURES))
            logit = rows @ beta + intercept
            labels[lo:lo + len(rows)] = rng.random(len(rows)) < 1.0 / (1.0 + np.exp(-logit))
            handle.write(rows.tobytes())
    np.save(y_path, labels)
    X_test = rng.standard_normal((N_TEST, N_FEATURES))
    y_test = (rng.random(N_TEST) < 1.0 / (1.0 + np.exp(-(X_test @ beta + intercept))))
    np.savez(test_path, X=X_test, y=y_test.astype(int))
    print(json.dumps({"generated": str(x_path), "bytes": x_path.stat().st_size,
                      "seconds": round(time.perf_counter() - start, 1)}))


def newton_fit(X, y, *, tol: float = 1e-10, max_steps: int = 20, warm_rows: int = 200_000):
    """Newton steps on the engine's objective, streaming X; returns (theta, log).

    Starts from scikit-learn's fit on the first ``warm_rows`` rows (the rows are
    exchangeable), so that few full passes are needed.
    """
    from sklearn.linear_model import LogisticRegression

    from skinfluence.losses import BinaryLogistic
    from skinfluence.objective import GLMObjective, LinearDesign

    design = LinearDesign(X)
    m = min(warm_rows, len(y))
    # the subsample's optimum, rescaled to the full objective's penalty (C per row)
    warm = LogisticRegression(C=C * len(y) / m, tol=1e-8, max_iter=1000).fit(
        np.asarray(X[:m]), y[:m])
    design.release(slice(0, m))
    theta = np.hstack([warm.coef_, warm.intercept_[:, None]])
    log = []
    for step in range(max_steps):
        start = time.perf_counter()
        objective = GLMObjective(BinaryLogistic(), design, y, theta, penalty=1.0 / C)
        grad = objective.gradient()
        norm = float(np.abs(grad).max()) / len(y)
        if norm < tol:
            log.append({"step": step, "grad": norm, "seconds": time.perf_counter() - start})
            break
        hess = objective.hessian()
        theta = theta - np.linalg.solve(hess, grad)[None, :]
        log.append({"step": step, "grad": norm, "seconds": time.perf_counter() - start})
    return theta, log


def chunk_cost(engine, X_test, y_test, n_chunks: int = 5) -> dict:
    """Seconds per chunk of training rows (the unit of distributed work), by task.

    The same code as a worker runs for one chunk: read the rows (from the page cache,
    where the earlier passes left them) and compute; the Hessian's share of a chunk
    (its rank-k update) is timed too, although that pass runs in the calling process.
    """
    from skinfluence._influence import MAX_CHUNK_ROWS

    design, y_enc = engine._test_problem(X_test, y_test)
    grads = engine._test_gradients(design, y_enc)
    stacked = engine._stack_outputs(engine.solver_.solve(grads.T))
    obj = engine.objective
    weights = obj.curvature[:, 0, 0] * obj.sample_weight
    tasks = {
        "influence (10 test points)": lambda rows: engine._influence_rows(rows, stacked),
        "self_influence": lambda rows: engine._self_influence_rows(rows),
        "newton weights (leverage)": lambda rows: engine._newton_weights(rows),
        "hessian (rank-k update)": lambda rows: obj.design.rows(rows).gram(weights[rows]),
    }
    n = engine.n_train
    starts = np.linspace(0, n - MAX_CHUNK_ROWS, n_chunks).astype(int)
    out = {"rows_per_chunk": MAX_CHUNK_ROWS, "n_chunks": -(-n // MAX_CHUNK_ROWS),
           "median_seconds_per_chunk": {}}
    for name, task in tasks.items():
        times = []
        for start in starts:
            rows = slice(int(start), int(start) + MAX_CHUNK_ROWS)
            tic = time.perf_counter()
            task(rows)
            obj.design.release(rows)
            times.append(time.perf_counter() - tic)
        out["median_seconds_per_chunk"][name] = round(float(np.median(times)), 4)
    return out


def dask_overhead(engine, X_test, y_test) -> dict:
    """The influence pass serially and on a 2-process LocalCluster (same numbers)."""
    import joblib
    from distributed import Client, LocalCluster

    engine.n_jobs = 1
    tic = time.perf_counter()
    serial = engine.influence(X_test, y_test)
    serial_seconds = time.perf_counter() - tic
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        engine.n_jobs = None
        with joblib.parallel_backend("dask"):
            tic = time.perf_counter()
            remote = engine.influence(X_test, y_test)  # includes broadcasting the engine
            first = time.perf_counter() - tic
            tic = time.perf_counter()
            engine.influence(X_test, y_test)
            second = time.perf_counter() - tic
    return {"serial_seconds": round(serial_seconds, 2),
            "two_workers_seconds_first_call": round(first, 2),
            "two_workers_seconds_second_call": round(second, 2),
            "identical": bool(np.array_equal(serial, remote))}


def run(n_rows: int, n_jobs: int, dask: bool) -> None:
    from sklearn.linear_model import LogisticRegression

    import skinfluence

    x_path, y_path, test_path = _paths(n_rows)
    X = np.load(x_path, mmap_mode="r")
    y = np.load(y_path).astype(np.float64)
    test = np.load(test_path)
    X_test, y_test = test["X"], test["y"]
    import os

    from threadpoolctl import threadpool_info

    report = {"rows": n_rows, "features": N_FEATURES, "dtype": str(X.dtype),
              "file_gib": round(X.nbytes / 2**30, 2), "n_jobs": n_jobs,
              "blas_threads": max(i["num_threads"] for i in threadpool_info()
                                  if i["user_api"] == "blas"),
              "load_average_at_start": os.getloadavg(),
              "rss_start_mib": round(rss_bytes("VmRSS:") / 2**20)}
    total = time.perf_counter()

    tic = time.perf_counter()
    theta, log = newton_fit(X, y)
    report["fit"] = {"seconds": round(time.perf_counter() - tic, 1), "newton_steps": len(log),
                     "final_grad_over_n": log[-1]["grad"],
                     "seconds_per_step": [round(entry["seconds"], 1) for entry in log]}

    clf = LogisticRegression(C=C)
    clf.classes_ = np.array([0, 1])
    clf.coef_, clf.intercept_ = theta[:, :-1], theta[:, -1]
    clf.n_features_in_ = N_FEATURES

    laps = {}
    tic = time.perf_counter()
    engine = skinfluence.explain(clf, X, y.astype(int), n_jobs=n_jobs)
    laps["explain (validate + raw predictions)"] = time.perf_counter() - tic
    tic = time.perf_counter()
    engine.fit()
    laps["fit (gradient check + Hessian + Cholesky)"] = time.perf_counter() - tic
    tic = time.perf_counter()
    influence = engine.influence(X_test, y_test)
    laps["influence, 10 test points"] = time.perf_counter() - tic
    top = np.argsort(-influence.sum(axis=1))[:5]
    del influence
    tic = time.perf_counter()
    self_influence = engine.self_influence()
    laps["self_influence, all rows"] = time.perf_counter() - tic
    del self_influence
    tic = time.perf_counter()
    newton = engine.loo_effect(X_test, y_test, method="newton")
    laps["loo_effect newton, 10 test points"] = time.perf_counter() - tic
    del newton
    report["engine_seconds"] = {name: round(value, 1) for name, value in laps.items()}
    report["solver"] = engine.diagnostics_["solver"]
    report["gradient_norm"] = engine.diagnostics_["gradient_norm"]
    report["most_harmful_rows"] = top.tolist()
    report["total_seconds"] = round(time.perf_counter() - total, 1)
    report["peak_rss_mib"] = round(rss_bytes() / 2**20)

    report["chunk"] = chunk_cost(engine, X_test, y_test)
    tic = time.perf_counter()
    payload = pickle.dumps(engine)
    report["broadcast"] = {"engine_pickle_mib": round(len(payload) / 2**20, 1),
                           "pickle_seconds": round(time.perf_counter() - tic, 2)}
    del payload
    if dask:
        report["dask_local_cluster"] = dask_overhead(engine, X_test, y_test)
    print(json.dumps(report, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["generate", "run"])
    parser.add_argument("--rows", type=int, default=N_ROWS)
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--dask", action="store_true",
                        help="also time the influence pass on a 2-process LocalCluster")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="BLAS threads of the passes run here (default: all cores); 1 "
                             "avoids spinning BLAS threads on a machine shared with others")
    args = parser.parse_args()
    if args.command == "generate":
        generate(args.rows)
        return
    import scipy.linalg  # noqa: F401  (load SciPy's BLAS too, so that the limit covers it)
    from threadpoolctl import threadpool_limits

    import skinfluence  # noqa: F401

    with threadpool_limits(limits=args.blas_threads, user_api="blas"):
        run(args.rows, args.n_jobs, args.dask)


if __name__ == "__main__":
    main()
