#!/usr/bin/env python
"""Sparse bag-of-words logistic regression, one test point, ``solver="cg"``.

Synthetic data with a fixed seed: each row draws ``--tokens`` word tokens from a
Zipf-like vocabulary (column ``j`` of a random permutation has probability
``~ 1 / (j + 1)``), counts become ``log(1 + count)`` and rows are scaled to unit
L2 norm (sublinear tf, as ``TfidfVectorizer(sublinear_tf=True, use_idf=False)``).
With the defaults (n=500,000, d=100,000, 60 tokens) rows keep about 50 distinct
non-zeros.  Labels come from a known logistic model; scikit-learn's
``LogisticRegression`` is fitted once (timed separately, reused from the scratch
directory on later runs) and skinfluence explains it with conjugate gradients:
the Hessian, 100,001 x 100,001, is never formed.

Cases (each in its own subprocess; peak RSS includes the ~0.3 GiB of X):

- ``floor_hvp``: one Hessian-vector product by hand, ``X @ v`` then ``X.T @ q``
  (scipy sparse): the floor of one CG iteration.
- ``skinfluence_cg``: ``explain(clf, X, y, solver="cg")``, then
  ``influence_factors`` (the CG solve, default ``rtol=1e-8``) and
  ``influence_from_factors`` (the product with every training gradient) --
  the two halves of ``influence()``.
- ``skinfluence_cg_rtol1e-5``: the same with ``solver_options={"rtol": 1e-5}``.

Accuracy: the relative residual ``||H x - b|| / ||b||`` of the CG solution and the
max relative difference of the influence column from ``skinfluence_cg``.

Usage::

    PYTHONPATH=. python benchmarks/bench_sparse_cg.py                       # full size
    PYTHONPATH=. python benchmarks/bench_sparse_cg.py --n 50000 --d 20000   # quick
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H  # noqa: E402

SCRIPT = os.path.abspath(__file__)
CASES = ["floor_hvp", "skinfluence_cg", "skinfluence_cg_rtol1e-5"]
REFERENCE = "skinfluence_cg"


def bag_of_words(n: int, d: int, tokens: int, rng: np.random.Generator) -> sp.csr_matrix:
    """Rows of ``tokens`` Zipf-distributed words, sublinear counts, unit L2 norm."""
    popularity = np.cumsum(1.0 / np.arange(1.0, d + 1.0))
    popularity /= popularity[-1]
    vocabulary = rng.permutation(d)  # frequent words anywhere, not in the first columns
    cols = vocabulary[np.searchsorted(popularity, rng.random(n * tokens))]
    rows = np.repeat(np.arange(n), tokens)
    X = sp.csr_matrix((np.ones(n * tokens), (rows, cols)), shape=(n, d))
    X.sum_duplicates()
    X.data = np.log1p(X.data)
    norms = np.sqrt(np.bincount(np.repeat(np.arange(n), np.diff(X.indptr)),
                                weights=X.data**2, minlength=n))
    X.data /= np.repeat(norms, np.diff(X.indptr))
    return X


def prepare(args) -> dict:
    from scipy.special import expit
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    X = bag_of_words(args.n + 1, args.d, args.tokens, rng)
    w_true = 3.0 * rng.standard_normal(args.d)  # logit std ~2.5 on unit-norm rows
    y = (rng.random(args.n + 1) < expit(X @ w_true - 0.5)).astype(np.int64)
    gen_s = time.perf_counter() - start
    X_train, X_test = X[:args.n], X[args.n:]
    start = time.perf_counter()
    clf = LogisticRegression(C=args.C, solver=args.fit_solver, tol=args.fit_tol,
                             max_iter=2000).fit(X_train, y[:args.n])
    fit_s = time.perf_counter() - start
    sp.save_npz(os.path.join(args.scratch, "X.npz"), X_train, compressed=False)
    sp.save_npz(os.path.join(args.scratch, "Xt.npz"), X_test, compressed=False)
    for name, arr in dict(y=y[:args.n], yt=y[args.n:], coef=clf.coef_,
                          intercept=clf.intercept_, classes=clf.classes_).items():
        np.save(os.path.join(args.scratch, f"{name}.npy"), arr)
    return {"gen_s": gen_s, "fit_s": fit_s, "n_iter": int(np.max(clf.n_iter_)),
            "nnz_per_row": X_train.nnz / args.n,
            "x_mib": (X_train.data.nbytes + X_train.indices.nbytes
                      + X_train.indptr.nbytes) / 2**20}


def load_problem(args):
    from sklearn.linear_model import LogisticRegression

    X = sp.load_npz(os.path.join(args.scratch, "X.npz")).tocsr()
    Xt = sp.load_npz(os.path.join(args.scratch, "Xt.npz")).tocsr()
    y, yt, coef, intercept, classes = (np.load(os.path.join(args.scratch, f"{k}.npy"))
                                       for k in ("y", "yt", "coef", "intercept", "classes"))
    clf = LogisticRegression(C=args.C, solver=args.fit_solver, tol=args.fit_tol, max_iter=2000)
    clf.coef_, clf.intercept_, clf.classes_ = coef, intercept, classes
    clf.n_features_in_ = X.shape[1]
    clf.n_iter_ = np.array([0])
    return clf, X, y, Xt, yt


def case_floor(args):
    clf, X, y, Xt, yt = load_problem(args)
    v = np.random.default_rng(0).standard_normal(X.shape[1])
    weights = np.full(X.shape[0], 0.2)

    def run():
        parts = H.Parts()
        with parts("X v"):
            q = X @ v
        with parts("X^T (D q)"):
            X.T @ (weights * q)
        return {"parts": parts.seconds}

    return run


def case_skinfluence(args, rtol):
    import skinfluence

    clf, X, y, Xt, yt = load_problem(args)
    options = {} if rtol is None else {"solver_options": {"rtol": rtol}}

    def run():
        parts = H.Parts()
        with parts("explain"):
            explainer = skinfluence.explain(clf, X, y, solver="cg", **options)
        with parts("setup"):
            explainer.fit()
        with parts("CG solve"):
            factors = explainer.influence_factors(Xt, yt)
        with parts("product"):
            out = explainer.influence_from_factors(factors)
        total = sum(parts.seconds.values())
        # residual of the solve, untimed: b = r_t x~_t, the one test gradient
        objective = explainer.objective
        design = objective.featurize(Xt)
        resid_t = objective.loss.gradient(objective.encode_target(yt),
                                          objective.raw_predictions(design))
        b = design.dense()[0] * resid_t[0, 0]
        residual = np.linalg.norm(objective.hessp(factors)[:, 0] - b)
        return {"result": out, "total": total, "parts": parts.seconds,
                "info": {"cg_iterations": explainer.solver_.n_iter_,
                         "relative_residual": residual / np.linalg.norm(b)}}

    return run


def case_function(name, args):
    if name == "floor_hvp":
        return case_floor(args)
    if name == "skinfluence_cg":
        return case_skinfluence(args, None)
    if name.startswith("skinfluence_cg_rtol"):
        return case_skinfluence(args, float(name.split("rtol")[1]))
    raise ValueError(f"unknown case {name!r}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500_000)
    parser.add_argument("--d", type=int, default=100_000)
    parser.add_argument("--tokens", type=int, default=60, help="word tokens drawn per row")
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--fit-solver", default="newton-cg")
    parser.add_argument("--fit-tol", type=float, default=1e-5)
    H.add_common_arguments(parser, reps=3, timeout=600.0)
    args = parser.parse_args(argv)
    machine = H.start(args, case_function, f"sparse_n{args.n}_d{args.d}")
    if machine is None:
        return
    key = {"problem": "bag-of-words", "n": args.n, "d": args.d, "tokens": args.tokens,
           "C": args.C, "solver": args.fit_solver, "tol": args.fit_tol, "seed": args.seed}
    meta = H.cached_prepare(args, key, lambda: prepare(args))
    print(f"data: {meta['nnz_per_row']:.1f} non-zeros per row, X {meta['x_mib']:.0f} MiB; "
          f"generated in {meta['gen_s']:.1f} s; sklearn {args.fit_solver} fit "
          f"{meta['fit_s']:.1f} s ({meta['n_iter']} iterations)", flush=True)
    runs = H.run_cases(SCRIPT, CASES if args.cases is None else args.cases.split(","), args,
                       width=26)
    hvp = runs.get("floor_hvp", {}).get("best")
    ref = H.load_result(args, REFERENCE)
    rows = []
    for case, run in runs.items():
        info = run.get("info", {})
        iters = info.get("cg_iterations")
        result = H.load_result(args, case)
        acc = H.accuracy(result, ref) if (result is not None and ref is not None) else None
        per_iter = (run["parts"]["CG solve"] / iters[0]) if iters else None
        rows.append([
            case, H.outcome(run, args.timeout), H.fmt_parts(run.get("parts", {})),
            str(iters[0]) if iters else "-",
            H.fmt_seconds(per_iter) if per_iter else "-",
            f"{per_iter / hvp:.2f}x" if (per_iter and hvp) else "-",
            f"{info['relative_residual']:.1e}" if "relative_residual" in info else "-",
            f"{acc['max_rel']:.1e}" if acc else "-",
            f"{run.get('peak_rss_mib', float('nan')) / 1024:.2f} "
            f"({run['baseline_rss_mib'] / 1024:.2f})",
        ])
    print(f"\n### Sparse bag-of-words CG, n={args.n}, d={args.d}, "
          f"{meta['nnz_per_row']:.1f} nnz/row, 1 test point\n\n- {machine}\n"
          f"- data generation {meta['gen_s']:.1f} s; sklearn LogisticRegression(C={args.C}, "
          f"solver={args.fit_solver!r}, tol={args.fit_tol:g}) fit {meta['fit_s']:.1f} s "
          f"({meta['n_iter']} iterations), not included below\n")
    print(H.markdown_table(["case", "wall (min)", "parts of best rep", "CG iterations",
                            "per iteration", "x floor HVP", "relative residual",
                            "max rel diff vs rtol 1e-8", "peak RSS GiB (after load)"], rows))
    if args.profile:
        H.print_profiles([H.launch(SCRIPT, "skinfluence_cg", args, profile=True)])


if __name__ == "__main__":
    main()
