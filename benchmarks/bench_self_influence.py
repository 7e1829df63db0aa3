#!/usr/bin/env python
"""Self-influence of every training row (dense binary logistic regression) vs its floor.

Self-influence ``I_up,loss(z_i, z_i) = -r_i^2 x~_i^T H^-1 x~_i`` (``H`` the Hessian
of the mean objective) needs one factorization ``H = L L^T`` and the squared row
norms of ``X~ L^-T``.  Its BLAS floor is therefore the two products

- ``X^T (D X)``: the Hessian (numpy GEMM, ``D X`` prepared outside the timer), and
- ``X @ B`` with ``B`` a (d, d) matrix: the cost of ``X~ L^-T`` as one GEMM,

measured in the same run.  Cases (each in its own subprocess):

- ``floor_f64``: the two products above.
- ``numpy_f64``: the whole computation by hand (sigmoid, Hessian, Cholesky,
  triangular solve, row norms): the reference for the accuracy column.
- ``skinfluence_f64`` / ``skinfluence_f32``: ``skinfluence.explain(clf, X, y)``
  then ``.self_influence()`` (float32 features for f32).

The data and the fit are those of ``bench_peers.py`` (same generator and seed).

Usage::

    PYTHONPATH=. python benchmarks/bench_self_influence.py                 # n=20000, d=200
    PYTHONPATH=. python benchmarks/bench_self_influence.py --n 100000 --d 500
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H  # noqa: E402
from bench_peers import C_REG, load, prepare, rebuilt_classifier  # noqa: E402

SCRIPT = os.path.abspath(__file__)
CASES = ["floor_f64", "numpy_f64", "skinfluence_f64", "skinfluence_f32"]
REFERENCE = "numpy_f64"


def case_floor(args):
    from scipy.special import expit

    X, coef, intercept = load(args, "X", "coef", "intercept")
    prob = expit(X @ coef[0] + intercept[0])
    scaled = X * (prob * (1 - prob))[:, None]
    B = np.random.default_rng(0).standard_normal((X.shape[1], X.shape[1]))

    def run():
        parts = H.Parts()
        with parts("X^T D X"):
            X.T @ scaled
        with parts("X B"):
            X @ B
        return {"parts": parts.seconds}

    return run


def case_numpy(args):
    from scipy.linalg import cho_factor, solve_triangular
    from scipy.special import expit

    X, y, coef, intercept = load(args, "X", "y", "coef", "intercept")
    n, d = X.shape

    def run():
        parts = H.Parts()
        with parts("hessian"):
            prob = expit(X @ coef[0] + intercept[0])
            resid, curv = prob - y, prob * (1 - prob)
            design = np.hstack([X, np.ones((n, 1))])
            hess = design.T @ (design * curv[:, None]) / n
            hess[np.arange(d), np.arange(d)] += 1.0 / (C_REG * n)
        with parts("cholesky"):
            chol = cho_factor(hess, lower=True)[0]
        with parts("triangular solve"):
            whitened = solve_triangular(chol, design.T, lower=True)
        with parts("row norms"):
            out = -(resid**2) * np.einsum("ij,ij->j", whitened, whitened)
        return {"result": out, "parts": parts.seconds}

    return run


def case_skinfluence(args, dtype):
    import skinfluence

    X, y = load(args, "X32" if dtype == np.float32 else "X", "y")
    clf = rebuilt_classifier(args)

    def run():
        parts = H.Parts()
        with parts("explain"):
            explainer = skinfluence.explain(clf, X, y)
        with parts("factor"):
            explainer.fit()
        with parts("self_influence"):
            out = explainer.self_influence()
        return {"result": out, "parts": parts.seconds}

    return run


def case_function(name, args):
    if name == "floor_f64":
        return case_floor(args)
    if name == "numpy_f64":
        return case_numpy(args)
    if name.startswith("skinfluence_"):
        return case_skinfluence(args, np.float32 if name.endswith("f32") else np.float64)
    raise ValueError(f"unknown case {name!r}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--d", type=int, default=200)
    parser.add_argument("--m", type=int, default=100, help="test points (unused here)")
    H.add_common_arguments(parser, reps=3, timeout=300.0)
    args = parser.parse_args(argv)
    machine = H.start(args, case_function, f"self_n{args.n}_d{args.d}")
    if machine is None:
        return
    key = {"problem": "dense-binary", "n": args.n, "d": args.d, "m": args.m, "seed": args.seed}
    fit = H.cached_prepare(args, key, lambda: prepare(args))
    runs = H.run_cases(SCRIPT, CASES if args.cases is None else args.cases.split(","), args)
    floor = runs.get("floor_f64", {}).get("best")
    ref = H.load_result(args, REFERENCE)
    rows = []
    for case, run in runs.items():
        result = H.load_result(args, case)
        acc = H.accuracy(result, ref) if (result is not None and ref is not None) else None
        best = run.get("best")
        rows.append([case, H.outcome(run, args.timeout), H.fmt_parts(run.get("parts", {})),
                     f"{best / floor:.2f}x" if (best and floor) else "-",
                     f"{acc['max_rel']:.1e}" if acc else "-",
                     f"{acc['pearson']:.7f}" if acc else "-",
                     f"{run.get('peak_rss_mib', float('nan')):.0f} "
                     f"({run['baseline_rss_mib']:.0f})"])
    print(f"\n### Self-influence of every training row, n={args.n}, d={args.d}\n\n- {machine}\n"
          f"- sklearn fit (untimed): {fit['fit_s']:.2f} s, {fit['n_iter']} lbfgs iterations; "
          f"reps {args.reps}\n")
    print(H.markdown_table(["case", "wall (min)", "parts of best rep", "x floor",
                            "max rel err vs numpy", "Pearson", "peak RSS MiB (after load)"],
                           rows))
    if args.profile:
        H.print_profiles([H.launch(SCRIPT, "skinfluence_f64", args, profile=True)])


if __name__ == "__main__":
    main()
