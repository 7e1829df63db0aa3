"""A sparse logistic problem with a million rows and a million columns, through CG.

``n = 1,000,000`` rows, ``d = 1,000,000`` columns, about 50 non-zeros per row (CSR,
float64, about 600 MB): a bag-of-words-like design whose column frequencies follow a
power law (a few "stop words" in many rows, most columns in a handful), rows scaled
to unit norm, labels from a logistic model on 2,000 columns.  The dense Hessian would
have 10^12 entries (8 TB), so ``solver="auto"`` picks conjugate gradients (one
Hessian-vector product = two sparse passes per iteration); ``solver="direct"`` is
refused before any work, and the benchmark times how long that refusal takes.

The model is fitted with the engine's own objective and its own CG solver: Newton
steps whose systems ``H d = -grad J`` are solved by :class:`~skinfluence.solvers.
CGSolver` (Jacobi-preconditioned, the solver that influence then uses), with a
backtracking line search, until ``max|grad J| / n < 1e-9``.  The fit is handed to a
plain ``sklearn.linear_model.LogisticRegression`` and explained with
:func:`skinfluence.explain`: influence of every training row on 10 test points, and
self-influence of 20 rows (one CG solve each).  Timings are wall-clock on this
machine (2 cores, shared); peak RSS is the process' ``VmHWM``.

Usage::

    python benchmarks/bench_sparse_1m.py generate     # writes ~600 MB under /tmp
    python benchmarks/bench_sparse_1m.py run
    python benchmarks/bench_sparse_1m.py run --rows 100000 --cols 100000   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

DATA = Path("/tmp/skinfluence_bench")
N_ROWS = N_COLS = 1_000_000
NNZ_PER_ROW, N_INFORMATIVE, N_TEST, C = 50, 2_000, 10, 1.0


def _paths(n_rows: int, n_cols: int) -> tuple[Path, Path]:
    stem = DATA / f"sparse_{n_rows}x{n_cols}"
    return stem.with_suffix(".X.npz"), stem.with_suffix(".yt.npz")


def rss_bytes(field: str = "VmHWM:") -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return -1


def _rows(rng, n_rows: int, n_cols: int) -> sp.csr_matrix:
    counts = np.maximum(rng.poisson(NNZ_PER_ROW, n_rows), 1)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    # power-law column frequencies: P(column < k) = (k / d) ** 0.4
    cols = (n_cols * rng.random(indptr[-1]) ** 2.5).astype(np.int32)
    data = np.repeat(1.0 / np.sqrt(counts), counts)  # unit-norm rows
    return sp.csr_matrix((data, cols, indptr), shape=(n_rows, n_cols))


def generate(n_rows: int, n_cols: int, seed: int = 0) -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    x_path, yt_path = _paths(n_rows, n_cols)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    X = _rows(rng, n_rows, n_cols)
    beta = np.zeros(n_cols)
    informative = rng.choice(min(n_cols, 50_000), size=N_INFORMATIVE, replace=False)
    beta[informative] = 3.0 * rng.standard_normal(N_INFORMATIVE)
    logit = X @ beta - 0.2
    y = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    X_test = _rows(rng, N_TEST, n_cols)
    y_test = (rng.random(N_TEST) < 1.0 / (1.0 + np.exp(-(X_test @ beta - 0.2)))).astype(int)
    sp.save_npz(x_path, X, compressed=False)
    np.savez(yt_path, y=y, test_data=X_test.data, test_indices=X_test.indices,
             test_indptr=X_test.indptr, y_test=y_test)
    print(json.dumps({"generated": str(x_path), "nnz": int(X.nnz),
                      "seconds": round(time.perf_counter() - start, 1)}))


def newton_cg_fit(X, y, *, tol: float = 1e-9, max_steps: int = 30):
    """Newton steps with the engine's objective and CG solver; returns (theta, log)."""
    from skinfluence.losses import BinaryLogistic
    from skinfluence.objective import GLMObjective, LinearDesign
    from skinfluence.solvers import CGSolver

    design = LinearDesign(X)
    loss = BinaryLogistic()
    theta = np.zeros((1, design.n_params))

    def objective_at(coef):
        obj = GLMObjective(loss, design, y, coef, penalty=1.0 / C)
        value = float(loss.value(y, obj.raw).sum() + 0.5 * np.sum(obj.penalty * coef**2))
        return obj, value

    obj, value = objective_at(theta)
    log = []
    for step in range(max_steps):
        tic = time.perf_counter()
        grad = obj.gradient()
        norm = float(np.abs(grad).max()) / len(y)
        if norm < tol:
            break
        solver = CGSolver(rtol=1e-6).fit(obj)
        direction = -solver.solve(grad).reshape(theta.shape)
        t = 1.0
        while True:  # backtracking: a full step is taken near the optimum
            trial, trial_value = objective_at(theta + t * direction)
            if trial_value <= value + 1e-4 * t * float(grad @ direction.ravel()) or t < 1e-4:
                break
            t /= 2
        theta, obj, value = theta + t * direction, trial, trial_value
        log.append({"step": step, "grad": norm, "cg_iterations": solver.n_iter_[0],
                    "step_size": t, "seconds": round(time.perf_counter() - tic, 1)})
    log.append({"step": len(log), "grad": norm})
    return theta, log


def run(n_rows: int, n_cols: int, n_jobs: int) -> None:
    from sklearn.linear_model import LogisticRegression

    import skinfluence

    x_path, yt_path = _paths(n_rows, n_cols)
    X = sp.load_npz(x_path).tocsr()
    saved = np.load(yt_path)
    y = saved["y"].astype(np.float64)
    X_test = sp.csr_matrix((saved["test_data"], saved["test_indices"], saved["test_indptr"]),
                           shape=(N_TEST, n_cols))
    y_test = saved["y_test"]
    report = {"rows": n_rows, "cols": n_cols, "nnz": int(X.nnz),
              "x_mib": round((X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 2**20),
              "n_jobs": n_jobs, "load_average_at_start": os.getloadavg(),
              "rss_start_mib": round(rss_bytes("VmRSS:") / 2**20)}
    total = time.perf_counter()

    tic = time.perf_counter()
    theta, log = newton_cg_fit(X, y)
    report["fit"] = {"seconds": round(time.perf_counter() - tic, 1), "newton_steps": len(log) - 1,
                     "final_grad_over_n": log[-1]["grad"], "steps": log[:-1]}

    clf = LogisticRegression(C=C)
    clf.classes_ = np.array([0, 1])
    clf.coef_, clf.intercept_ = theta[:, :-1], theta[:, -1]
    clf.n_features_in_ = n_cols

    laps = {}
    tic = time.perf_counter()
    try:
        skinfluence.explain(clf, X, y.astype(int), solver="direct").fit()
        refusal = "not refused"
    except MemoryError as exc:
        refusal = str(exc)
    laps["solver='direct' refused after"] = time.perf_counter() - tic
    report["direct_refusal"] = refusal

    tic = time.perf_counter()
    engine = skinfluence.explain(clf, X, y.astype(int), n_jobs=n_jobs)
    laps["explain (validate + raw predictions)"] = time.perf_counter() - tic
    tic = time.perf_counter()
    engine.fit()
    laps["fit (gradient check + Jacobi preconditioner)"] = time.perf_counter() - tic
    tic = time.perf_counter()
    influence = engine.influence(X_test, y_test)
    laps["influence, 10 test points"] = time.perf_counter() - tic
    report["cg_iterations_per_test_point"] = list(engine.solver_.n_iter_)
    report["most_harmful_rows"] = np.argsort(-influence.sum(axis=1))[:5].tolist()
    del influence
    tic = time.perf_counter()
    engine.self_influence(train_indices=np.arange(20))
    laps["self_influence, 20 rows"] = time.perf_counter() - tic
    report["engine_seconds"] = {name: round(value, 2) for name, value in laps.items()}
    report["solver"] = engine.diagnostics_["solver"]
    report["gradient_norm"] = engine.diagnostics_["gradient_norm"]
    report["total_seconds"] = round(time.perf_counter() - total, 1)
    report["peak_rss_mib"] = round(rss_bytes() / 2**20)
    print(json.dumps(report, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["generate", "run"])
    parser.add_argument("--rows", type=int, default=N_ROWS)
    parser.add_argument("--cols", type=int, default=N_COLS)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--blas-threads", type=int, default=None)
    args = parser.parse_args()
    if args.command == "generate":
        generate(args.rows, args.cols)
        return
    import scipy.linalg  # noqa: F401  (load SciPy's BLAS too, so that the limit covers it)
    from threadpoolctl import threadpool_limits

    import skinfluence  # noqa: F401

    with threadpool_limits(limits=args.blas_threads, user_api="blas"):
        run(args.rows, args.cols, args.n_jobs)


if __name__ == "__main__":
    main()
