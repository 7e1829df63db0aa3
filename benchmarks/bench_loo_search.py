"""LOOSearchCV (one fit per candidate) vs exact leave-one-out cross-validation.

On breast cancer (bundled with scikit-learn), standardized once, logistic regression over
a grid of C: exact LOO-CV is scikit-learn's ``GridSearchCV(cv=LeaveOneOut())`` with the
log loss (labels given, since each test fold holds one row); the approximation is
:class:`skinfluence.model_selection.LOOSearchCV`.  Prints both LOO losses per C, the C
each picks, the exact LOO loss of LOOSearchCV's pick relative to the best, and the time
ratio measured in this run with the same ``n_jobs``.

    PYTHONPATH=. python benchmarks/bench_loo_search.py --n 300 --n-jobs 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import log_loss, make_scorer
from sklearn.model_selection import GridSearchCV, LeaveOneOut
from sklearn.preprocessing import StandardScaler

from skinfluence.linear_model import LogisticRegression
from skinfluence.model_selection import LOOSearchCV


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="training rows (<= 569)")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid", type=float, nargs="+",
                        default=list(np.round(np.logspace(-3, 2, 11), 6)))
    args = parser.parse_args()

    X, y = load_breast_cancer(return_X_y=True)
    rows = np.random.RandomState(args.seed).permutation(len(y))[: args.n]
    X, y = StandardScaler().fit_transform(X[rows]), y[rows]
    estimator = LogisticRegression(tol=1e-10, solver="newton-cholesky", max_iter=1000)
    grid = {"C": args.grid}
    # start the worker pool (and its imports) first so that neither method pays for it
    LOOSearchCV(estimator, {"C": [1.0] * 2 * args.n_jobs}, n_jobs=args.n_jobs).fit(X, y)

    start = time.perf_counter()
    approx = LOOSearchCV(estimator, grid, n_jobs=args.n_jobs).fit(X, y)
    approx_s = time.perf_counter() - start
    start = time.perf_counter()
    approx_serial = LOOSearchCV(estimator, grid, n_jobs=1).fit(X, y)
    approx_serial_s = time.perf_counter() - start
    exact_scorer = make_scorer(log_loss, response_method="predict_proba",
                               greater_is_better=False, labels=np.unique(y))
    start = time.perf_counter()
    exact = GridSearchCV(estimator, grid, cv=LeaveOneOut(), scoring=exact_scorer,
                         n_jobs=args.n_jobs).fit(X, y)
    exact_s = time.perf_counter() - start

    approx_loss = -approx.cv_results_["mean_test_score"]
    assert np.allclose(approx_loss, -approx_serial.cv_results_["mean_test_score"])
    exact_loss = -exact.cv_results_["mean_test_score"]
    print(f"breast cancer, {args.n} rows, {X.shape[1]} features, n_jobs={args.n_jobs}")
    print(f"{'C':>10} {'exact LOO':>12} {'Newton LOO':>12} {'rel. diff':>10}")
    for C, e, a in zip(args.grid, exact_loss, approx_loss):
        print(f"{C:>10.4g} {e:>12.5f} {a:>12.5f} {a / e - 1:>+10.2%}")
    best = exact.best_index_
    picked = approx.best_index_
    print(f"exact LOO-CV picks C={args.grid[best]:g}; LOOSearchCV picks "
          f"C={args.grid[picked]:g}, whose exact LOO loss is "
          f"{exact_loss[picked] / exact_loss[best] - 1:+.2%} from the best")
    print(f"Pearson r (exact vs Newton LOO loss over the grid): "
          f"{np.corrcoef(exact_loss, approx_loss)[0, 1]:.5f}")
    print(f"time: exact LOO-CV {exact_s:.2f} s, LOOSearchCV {approx_s:.3f} s "
          f"(n_jobs={args.n_jobs}), {approx_serial_s:.3f} s (n_jobs=1); "
          f"ratio {exact_s / approx_s:.0f}x, {exact_s / approx_serial_s:.0f}x")


if __name__ == "__main__":
    main()
