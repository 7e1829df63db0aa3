#!/usr/bin/env python
"""Multinomial logistic regression on MNIST: influence of all 60,000 rows on 100 test points.

Data: ``../shared/data/mnist/mnist.npz`` (pixels / 255).  scikit-learn's
``LogisticRegression`` (lbfgs, multinomial, 10 classes) is fitted once (timed
separately, reused from the scratch directory on later runs).  The model has
``10 x 785 = 7850`` parameters; its Hessian is formed and factored exactly (the
intercept shift that the softmax ignores is removed as a null direction).

Cases (each in its own subprocess):

- ``numpy_f64``: the whole computation by hand -- the Hessian as
  ``K (K + 1) / 2 = 55`` numpy GEMM blocks ``X~^T diag(w_kl) X~``, Cholesky, solve,
  one product ``X~ @ F`` with the (785, 10 x 100) factors.  Its GEMM parts are the
  BLAS floor reported in the table; its result is the accuracy reference.
- ``skinfluence_f64``: ``explain(clf, X, y).influence(X_test, y_test)`` on float64 X.
- ``skinfluence_f32``: the same with float32 pixels (what ``X / 255`` gives on a
  float32 array): the data-sized products run in single precision.

Usage::

    PYTHONPATH=. python benchmarks/bench_multinomial.py
    PYTHONPATH=. python benchmarks/bench_multinomial.py --n 10000 --cases skinfluence_f64
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H  # noqa: E402

SCRIPT = os.path.abspath(__file__)
DEFAULT_DATA = os.path.join(os.path.dirname(SCRIPT), "..", "..", "shared", "data", "mnist",
                            "mnist.npz")
CASES = ["numpy_f64", "skinfluence_f64", "skinfluence_f32"]
REFERENCE = "numpy_f64"


def prepare(args) -> dict:
    from sklearn.linear_model import LogisticRegression

    with np.load(args.data) as data:
        X = data["X_train"].reshape(60000, -1)[:args.n] / 255.0
        y = data["y_train"][:args.n].astype(np.int64)
        Xt = data["X_test"].reshape(len(data["X_test"]), -1)[:args.m] / 255.0
        yt = data["y_test"][:args.m].astype(np.int64)
    start = time.perf_counter()
    clf = LogisticRegression(C=args.C, tol=args.fit_tol, max_iter=5000).fit(X, y)
    fit_s = time.perf_counter() - start
    for name, arr in dict(X=X, y=y, Xt=Xt, yt=yt, coef=clf.coef_, intercept=clf.intercept_,
                          classes=clf.classes_).items():
        np.save(os.path.join(args.scratch, f"{name}.npy"), arr)
    return {"fit_s": fit_s, "n_iter": int(np.max(clf.n_iter_))}


def load(args, *names):
    return [np.load(os.path.join(args.scratch, f"{name}.npy")) for name in names]


def rebuilt_classifier(args):
    from sklearn.linear_model import LogisticRegression

    coef, intercept, classes = load(args, "coef", "intercept", "classes")
    clf = LogisticRegression(C=args.C, tol=args.fit_tol, max_iter=5000)
    clf.coef_, clf.intercept_, clf.classes_ = coef, intercept, classes
    clf.n_features_in_ = coef.shape[1]
    clf.n_iter_ = np.array([0])
    return clf


def case_numpy(args):
    """Exact influence by hand, in the engine's convention ``-n g_t^T H_J^-1 g_i``."""
    from scipy.linalg import cho_factor, cho_solve
    from scipy.special import softmax

    X, y, Xt, yt, coef, intercept = load(args, "X", "y", "Xt", "yt", "coef", "intercept")
    n, d = X.shape
    K, p, m = coef.shape[0], d + 1, len(yt)
    theta = np.hstack([coef, intercept[:, None]])  # (K, p)
    design = np.hstack([X, np.ones((n, 1))])
    design_t = np.hstack([Xt, np.ones((m, 1))])

    def run():
        parts = H.Parts()
        with parts("softmax"):
            prob = softmax(design @ theta.T, axis=1)
            resid = prob.copy()
            resid[np.arange(n), y] -= 1.0
        hess = np.empty((K * p, K * p))
        with parts("55 block GEMMs"):
            for k in range(K):
                for l in range(k, K):
                    weight = prob[:, k] * ((k == l) - prob[:, l])
                    block = design.T @ (design * weight[:, None])
                    hess[k * p:(k + 1) * p, l * p:(l + 1) * p] = block
                    hess[l * p:(l + 1) * p, k * p:(k + 1) * p] = block.T
        with parts("cholesky + solve"):
            penalty = np.tile(np.r_[np.full(d, 1.0 / args.C), 0.0], K)
            hess[np.diag_indices_from(hess)] += penalty
            # the softmax ignores a common shift of the K intercepts: lift that direction
            null = np.zeros(K * p)
            null[np.arange(K) * p + d] = 1.0 / np.sqrt(K)
            hess += np.mean(np.diag(hess)) * np.outer(null, null)
            prob_t = softmax(design_t @ theta.T, axis=1)
            prob_t[np.arange(m), yt] -= 1.0
            grads_t = (prob_t[:, :, None] * design_t[:, None, :]).reshape(m, K * p)
            factors = cho_solve(cho_factor(hess, lower=True), grads_t.T)  # (K p, m)
        with parts("X~ F product"):
            stacked = factors.reshape(K, p, m).transpose(1, 0, 2).reshape(p, K * m)
            proj = (design @ stacked).reshape(n, K, m)
        with parts("residual contraction"):
            out = -n * np.einsum("ik,ikm->im", resid, proj)
        return {"result": out, "parts": parts.seconds}

    return run


def case_skinfluence(args, dtype):
    import skinfluence

    X, y, Xt, yt = load(args, "X", "y", "Xt", "yt")
    X, Xt = X.astype(dtype), Xt.astype(dtype)
    clf = rebuilt_classifier(args)

    def run():
        parts = H.Parts()
        with parts("explain"):
            explainer = skinfluence.explain(clf, X, y)
        with parts("factor"):
            explainer.fit()
        with parts("influence"):
            out = explainer.influence(Xt, yt)
        return {"result": out, "parts": parts.seconds,
                "info": {"solver": explainer.diagnostics_["solver"],
                         "gradient_norm": explainer.diagnostics_["gradient_norm"]}}

    return run


def case_function(name, args):
    if name == "numpy_f64":
        return case_numpy(args)
    if name.startswith("skinfluence_"):
        return case_skinfluence(args, np.float32 if name.endswith("f32") else np.float64)
    raise ValueError(f"unknown case {name!r}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.path.normpath(DEFAULT_DATA))
    parser.add_argument("--n", type=int, default=60_000, help="training rows used")
    parser.add_argument("--m", type=int, default=100, help="test points")
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--fit-tol", type=float, default=1e-6)
    H.add_common_arguments(parser, reps=2, timeout=600.0)
    args = parser.parse_args(argv)
    machine = H.start(args, case_function, f"mnist_n{args.n}_m{args.m}")
    if machine is None:
        return
    key = {"problem": "mnist", "n": args.n, "m": args.m, "C": args.C, "tol": args.fit_tol,
           "data": os.path.abspath(args.data)}
    meta = H.cached_prepare(args, key, lambda: prepare(args))
    print(f"sklearn fit {meta['fit_s']:.1f} s ({meta['n_iter']} lbfgs iterations)", flush=True)
    runs = H.run_cases(SCRIPT, CASES if args.cases is None else args.cases.split(","), args)
    numpy_parts = runs.get("numpy_f64", {}).get("parts", {})
    floor = (numpy_parts["55 block GEMMs"] + numpy_parts["X~ F product"]
             if numpy_parts else None)
    ref = H.load_result(args, REFERENCE)
    f64 = H.load_result(args, "skinfluence_f64")
    rows = []
    for case, run in runs.items():
        result = H.load_result(args, case)
        acc = H.accuracy(result, ref) if (result is not None and ref is not None) else None
        acc64 = H.accuracy(result, f64) if (result is not None and f64 is not None) else None
        best = run.get("best")
        rows.append([case, H.outcome(run, args.timeout), H.fmt_parts(run.get("parts", {})),
                     f"{best / floor:.2f}x" if (best and floor) else "-",
                     f"{acc['max_rel']:.1e} / {acc['pearson']:.7f}" if acc else "-",
                     f"{acc64['max_rel']:.1e} / {acc64['pearson']:.7f}" if acc64 else "-",
                     f"{run.get('peak_rss_mib', float('nan')):.0f} "
                     f"({run['baseline_rss_mib']:.0f})"])
    print(f"\n### MNIST multinomial (K=10, n={args.n}, d=784, {args.m} test points)\n\n"
          f"- {machine}\n- sklearn LogisticRegression(C={args.C}, tol={args.fit_tol:g}) fit "
          f"{meta['fit_s']:.1f} s ({meta['n_iter']} lbfgs iterations), not included below\n"
          f"- floor = the numpy case's 55 block GEMMs + its X~ F product: "
          f"{H.fmt_seconds(floor)}\n")
    print(H.markdown_table(["case", "wall (min)", "parts of best rep", "x floor",
                            "vs numpy: max rel / Pearson", "vs skinfluence f64",
                            "peak RSS MiB (after load)"], rows))
    if args.profile:
        H.print_profiles([H.launch(SCRIPT, "skinfluence_f64", args, profile=True)])


if __name__ == "__main__":
    main()
