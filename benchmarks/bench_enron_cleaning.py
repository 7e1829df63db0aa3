"""Enron1 label fixing (paper Fig. 6) beside cleanlab, and the cost of self-influence.

Part 1, the same runs as ``tests/test_paper_enron.py``: flip 10% of the Enron1 training
labels (a new set per seed), check the top 5/10/20% of the rows by each ranking, fix the
flips found, retrain; print the share of flips found and the test accuracy, mean +- std
over seeds.  Rankings: self-influence (the paper's), the loss at each row's one-step
Newton leave-one-out prediction (skinfluence's ``"loo loss"``: out-of-sample from one
fit), own training loss, random, and cleanlab's ``find_label_issues`` on 5-fold
out-of-sample probabilities (its flagged rows first, worst first, then the remaining rows
by its label-quality score).  cleanlab is a
benchmark-only dependency; run this file from a separate environment that has it, with
skinfluence on PYTHONPATH::

    python3 -m venv /work/cleanvenv
    /work/cleanvenv/bin/pip install numpy scipy scikit-learn pandas cleanlab
    PYTHONPATH=. /work/cleanvenv/bin/python benchmarks/bench_enron_cleaning.py --seeds 10

Without cleanlab the column is left out.

Part 2: self-influence of every training row on Enron's bag of words (4,137 x 7,260
sparse counts, fewer rows than parameters, so the engine takes the n x n Woodbury dual):
the wall time of a fresh engine (factorization + all leverages, the fit excluded), with
the BLAS using 2 threads and 1 thread, and where the time goes (the n x n kernel
``X Lambda^-1 X^T``, its Cholesky factor, the triangular inverse for the leverages), each
piece re-timed on its own with the same inputs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.linalg
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.model_selection import cross_val_predict
from threadpoolctl import threadpool_limits

from skinfluence import explain
from skinfluence.cleaning import simulate_label_fixing
from skinfluence.datasets import load_enron1
from skinfluence.linear_model import LogisticRegression
from skinfluence.solvers import _penalized_kernel


def cleanlab_ranking(C: float):
    """A ranking callable for simulate_label_fixing built on cleanlab, or None."""
    try:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores
    except ImportError:
        return None

    def rank(model, X, y_noisy, rng):
        # cleanlab wants out-of-sample probabilities: 5-fold, the same model family
        probe = SkLogisticRegression(C=C, tol=1e-6, max_iter=5000)
        probs = cross_val_predict(probe, X, y_noisy, cv=5, method="predict_proba")
        flagged = find_label_issues(labels=y_noisy, pred_probs=probs,
                                    return_indices_ranked_by="self_confidence")
        quality = get_label_quality_scores(y_noisy, probs)
        rest = np.setdiff1d(np.arange(len(y_noisy)), flagged)
        rest = rest[np.argsort(quality[rest], kind="stable")]  # lowest quality first
        return np.concatenate([flagged, rest])

    return rank


def label_fixing_table(args, data) -> None:
    X_train, y_train, X_test, y_test, _ = data
    rankings = {"influence": "influence", "loo loss": "loo loss", "train loss": "train loss",
                "random": "random"}
    cleanlab = cleanlab_ranking(args.C)
    if cleanlab is None:
        print("cleanlab is not installed here: its column is left out")
    else:
        rankings["cleanlab"] = cleanlab
    start = time.perf_counter()
    result = simulate_label_fixing(
        LogisticRegression(C=args.C, tol=1e-8, max_iter=5000), X_train, y_train, X_test,
        y_test, flip_fraction=0.1, fractions=args.fractions, rankings=rankings,
        n_repeats=args.seeds, random_state=args.seed)
    elapsed = time.perf_counter() - start
    print(f"Enron1: {result.n_train} train / {len(y_test)} test emails, "
          f"{X_train.shape[1]} words; {result.n_flipped} labels flipped (10%), "
          f"{args.seeds} seeds, C={args.C:g}; {elapsed:.0f} s")
    print(f"test accuracy: {result.accuracy_noisy.mean():.3f} +- "
          f"{result.accuracy_noisy.std():.3f} with the flips, {result.accuracy_clean:.3f} clean")
    head = "".join(f"{f:>17.0%}" for f in result.fractions)
    for title, table in (("share of flipped labels found", result.found),
                         ("test accuracy after fixing", result.accuracy)):
        print(f"\n{title} (mean +- std over seeds), checking the top ...")
        print(f"{'ranking':<12}{head}")
        for name, values in table.items():
            cells = "".join(f"{m:>10.3f} +- {s:.3f}"
                            for m, s in zip(values.mean(0), values.std(0)))
            print(f"{name:<12}{cells}")


def _time(func, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def self_influence_speed(args, data) -> None:
    X_train, y_train = data[0], data[1]
    clf = LogisticRegression(C=args.C, tol=1e-8, max_iter=5000).fit(X_train, y_train)

    def fresh_engine():
        # a new engine each time: objective, factorization and leverages (not the fit)
        return explain(clf, X_train, y_train, solver="woodbury").self_influence()

    print(f"\nself-influence of all {X_train.shape[0]} rows, {X_train.shape[1] + 1} "
          "parameters (Woodbury dual), best of "
          f"{args.repeats}:")
    for threads in (2, 1):
        with threadpool_limits(limits=threads, user_api="blas"):
            seconds = _time(fresh_engine, args.repeats)
        print(f"  BLAS threads={threads}: {seconds:.2f} s")

    # where the time goes: the same pieces the solver runs, timed one by one
    engine = explain(clf, X_train, y_train, solver="woodbury").fit()
    objective = engine.objective
    solver = engine.solver_
    design = objective.design
    lam = solver._lam
    scale = np.where(solver._free, 0.0, 1.0 / np.where(solver._free, 1, lam))
    sqrt_w = solver._sqrt_w
    print("  pieces (2 threads / 1 thread):")
    for threads in (2, 1):
        with threadpool_limits(limits=threads, user_api="blas"):
            t_kernel = _time(lambda: _penalized_kernel(design, scale), args.repeats)
            kernel = _penalized_kernel(design, scale)
            core = sqrt_w[:, None] * kernel * sqrt_w[None, :]
            core[np.diag_indices_from(core)] += 1.0
            t_chol = _time(lambda: scipy.linalg.cholesky(core, lower=True, check_finite=False),
                           args.repeats)
            chol = scipy.linalg.cholesky(core, lower=True, check_finite=False)
            t_inv = _time(lambda: scipy.linalg.lapack.dtrtri(chol, lower=1), args.repeats)
            t_sparse = _time(lambda: (design.X @ design.X.T).toarray(), args.repeats)
        print(f"    threads={threads}: kernel (frequent columns by syrk, rare ones sparse) "
              f"{t_kernel:.2f} s (all-sparse X X^T: {t_sparse:.2f} s), Cholesky {t_chol:.2f} s, "
              f"triangular inverse {t_inv:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.10, 0.20])
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats")
    parser.add_argument("--skip-table", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    data = load_enron1()
    if not args.skip_table:
        label_fixing_table(args, data)
    if not args.skip_speed:
        self_influence_speed(args, data)


if __name__ == "__main__":
    main()
