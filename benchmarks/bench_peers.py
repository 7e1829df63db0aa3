#!/usr/bin/env python
"""Full influence matrix of a dense binary logistic regression: skinfluence vs peers.

Problem: ``n`` training rows and ``m`` test points drawn from a logistic model on
standard normal features (``d`` of them), fitted with scikit-learn's
``LogisticRegression(C=1, tol=1e-8)``.  Every case computes the full ``(n, m)``
matrix of Koh & Liang's ``I_up,loss``; results are converted to skinfluence's
convention ``I[i, t] = -g_t^T H^-1 g_i`` (``H`` the Hessian of the mean objective,
positive = harmful) and compared with skinfluence's float64 matrix.

Cases (each in its own subprocess, minimum over repetitions, peak RSS):

- ``floor_f64`` / ``floor_f32``: the BLAS floor, the two matrix products alone:
  ``X^T (D X)`` (numpy GEMM, ``D X`` prepared outside the timer) and ``X @ S``
  with ``S`` of shape (d, m).
- ``numpy_f64``: the whole computation written directly in numpy/scipy (sigmoid,
  Hessian, Cholesky, product): an independent reference for the accuracy column.
- ``skinfluence_f64`` / ``skinfluence_f32``: ``skinfluence.explain(clf, X, y)``
  then ``.influence(X_test, y_test)``; f32 hands the engine float32 features.
- ``skinfluence_estimator``: ``skinfluence.linear_model.LogisticRegression``
  fitted in the worker (untimed); the first ``influence`` call is timed, the
  second (cached factorization) is shown as a part.
- ``pyinfluence``: ``pyinfluence.InfluenceFunctions(mode="loss", damping=0)``;
  returns ``-I / n`` with shape (m, n).
- ``pydvl_{direct,cg,blockcg,lissa}_{f64,f32}``: pyDVL 0.10 torch influence models
  with a mean-reduced ``BCEWithLogitsLoss`` and ``regularization=1/(C n)``;
  returns ``-I`` with shape (m, n).  Its regularization also penalizes the
  intercept (sklearn does not): the "bias-penalized" line shows how much that
  alone changes the exact answer.
- ``captum_naive_{f64,f32}``: captum 0.9 ``NaiveInfluenceFunction`` with a
  sum-reduced loss, ``hessian_reg=1/C`` and ``projection_dim=d+1`` (exact);
  returns ``-I / n`` with shape (m, n).

Peers are benchmark-only; install them in a separate virtual environment (see
``benchmarks/README.md``) and run this script with that environment's python,
skinfluence coming from ``PYTHONPATH``.  Cases whose library is missing are
reported as failed.

Usage::

    PYTHONPATH=. /work/benchvenv/bin/python benchmarks/bench_peers.py            # n=20000, d=200
    PYTHONPATH=. /work/benchvenv/bin/python benchmarks/bench_peers.py --n 100000 --d 500
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H  # noqa: E402

SCRIPT = os.path.abspath(__file__)
C_REG = 1.0
CASES = [
    "floor_f64", "floor_f32", "numpy_f64",
    "skinfluence_f64", "skinfluence_f32", "skinfluence_estimator",
    "pyinfluence",
    "pydvl_direct_f64", "pydvl_direct_f32",
    "pydvl_blockcg_f64", "pydvl_blockcg_f32",
    "pydvl_cg_f64", "pydvl_cg_f32",
    "pydvl_lissa_f64", "pydvl_lissa_f32",
    "captum_naive_f64", "captum_naive_f32",
]
REFERENCE = "skinfluence_f64"


# ----------------------------------------------------------------------------- data


def make_problem(n: int, d: int, m: int, seed: int):
    """Standard normal features, labels from a logistic model with logit std ~1."""
    from scipy.special import expit

    rng = np.random.default_rng(seed)
    w_true = rng.standard_normal(d) / np.sqrt(d)
    X = rng.standard_normal((n + m, d))
    y = (rng.random(n + m) < expit(X @ w_true - 0.4)).astype(np.int64)
    return X[:n], y[:n], X[n:], y[n:]


def prepare(args) -> dict:
    """Generate and fit once; store arrays (no pickles: workers may run other numpy)."""
    import time

    from sklearn.linear_model import LogisticRegression

    X, y, Xt, yt = make_problem(args.n, args.d, args.m, args.seed)
    start = time.perf_counter()
    clf = LogisticRegression(C=C_REG, tol=1e-8, max_iter=1000).fit(X, y)
    fit_s = time.perf_counter() - start
    for name, arr in dict(X=X, y=y, Xt=Xt, yt=yt, coef=clf.coef_, intercept=clf.intercept_,
                          classes=clf.classes_).items():
        np.save(os.path.join(args.scratch, f"{name}.npy"), arr)
    np.save(os.path.join(args.scratch, "X32.npy"), X.astype(np.float32))
    np.save(os.path.join(args.scratch, "Xt32.npy"), Xt.astype(np.float32))
    return {"fit_s": fit_s, "n_iter": int(clf.n_iter_[0])}


def load(args, *names):
    return [np.load(os.path.join(args.scratch, f"{name}.npy")) for name in names]


def rebuilt_classifier(args):
    """The parent's fitted sklearn model, rebuilt from its public fitted attributes."""
    from sklearn.linear_model import LogisticRegression

    coef, intercept, classes = load(args, "coef", "intercept", "classes")
    clf = LogisticRegression(C=C_REG, tol=1e-8, max_iter=1000)
    clf.coef_, clf.intercept_, clf.classes_ = coef, intercept, classes
    clf.n_features_in_ = coef.shape[1]
    clf.n_iter_ = np.array([0])
    return clf


# ----------------------------------------------------------------------------- cases


def case_floor(args, dtype):
    from scipy.special import expit

    X = load(args, "X32" if dtype == np.float32 else "X")[0]
    coef, intercept = load(args, "coef", "intercept")
    prob = expit(X @ coef[0].astype(dtype) + intercept[0])
    scaled = X * (prob * (1 - prob)).astype(dtype)[:, None]
    S = np.random.default_rng(0).standard_normal((X.shape[1], args.m)).astype(dtype)

    def run():
        parts = H.Parts()
        with parts("X^T D X"):
            X.T @ scaled
        with parts("X S"):
            X @ S
        return {"parts": parts.seconds}

    return run


def case_numpy(args):
    """Everything by hand: sigmoid, Hessian by GEMM, Cholesky, one product over X."""
    from scipy.linalg import cho_factor, cho_solve
    from scipy.special import expit

    X, y, Xt, yt, coef, intercept = load(args, "X", "y", "Xt", "yt", "coef", "intercept")
    w, b = coef[0], intercept[0]
    n, d = X.shape

    def run():
        parts = H.Parts()
        with parts("hessian"):
            prob = expit(X @ w + b)
            resid, curv = prob - y, prob * (1 - prob)
            scaled = X * curv[:, None]
            hess = np.empty((d + 1, d + 1))
            hess[:d, :d] = X.T @ scaled
            hess[:d, d] = hess[d, :d] = scaled.sum(axis=0)
            hess[d, d] = curv.sum()
            del scaled
            hess /= n
            hess[np.arange(d), np.arange(d)] += 1.0 / (C_REG * n)
        with parts("solve"):
            resid_t = expit(Xt @ w + b) - yt
            grads_t = np.hstack([Xt, np.ones((len(yt), 1))]) * resid_t[:, None]
            factors = cho_solve(cho_factor(hess, lower=True), grads_t.T)
        with parts("product"):
            out = X @ factors[:d]
            out += factors[d]
            out *= -resid[:, None]
        return {"result": out, "parts": parts.seconds}

    return run


def case_skinfluence(args, dtype):
    import skinfluence

    suffix = "32" if dtype == np.float32 else ""
    X, Xt, y, yt = load(args, "X" + suffix, "Xt" + suffix, "y", "yt")
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
                "info": {"solver": explainer.diagnostics_["solver"]}}

    return run


def case_skinfluence_estimator(args):
    import time

    from skinfluence.linear_model import LogisticRegression

    X, Xt, y, yt = load(args, "X", "Xt", "y", "yt")
    est = LogisticRegression(C=C_REG, tol=1e-8, max_iter=1000)

    def run():
        est.fit(X, y)  # untimed; a (re)fit also drops the cached factorization
        start, cpu_start = time.perf_counter(), time.process_time()
        out = est.influence(Xt, yt)
        first, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        start = time.perf_counter()
        est.influence(Xt, yt)
        cached = time.perf_counter() - start
        return {"result": out, "total": first, "cpu": cpu,
                "parts": {"first call": first, "second call (cached)": cached}}

    return run


def case_pyinfluence(args):
    import time

    from pyinfluence import InfluenceFunctions

    X, Xt, y, yt = load(args, "X", "Xt", "y", "yt")
    clf = rebuilt_classifier(args)
    n = X.shape[0]

    def run():
        start = time.perf_counter()
        attributor = InfluenceFunctions(mode="loss", damping=0.0).fit(clf, X, y)
        fitted = time.perf_counter()
        scores = attributor.explain(Xt, yt)  # (m, n) = -I / n
        done = time.perf_counter()
        return {"result": -n * scores.T,
                "parts": {"fit": fitted - start, "explain": done - fitted}}

    return run


def _torch_problem(args, dtype):
    import torch
    from torch import nn

    X, Xt, y, yt, coef, intercept = load(args, "X", "Xt", "y", "yt", "coef", "intercept")
    model = nn.Linear(X.shape[1], 1).to(dtype)
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(coef).to(dtype))
        model.bias.copy_(torch.from_numpy(intercept).to(dtype))

    def tensor(a, col=False):
        t = torch.from_numpy(np.ascontiguousarray(a)).to(dtype)
        return t[:, None] if col else t

    return model, tensor(X), tensor(y, True), tensor(Xt), tensor(yt, True)


def case_pydvl(args, method, dtype_name):
    import time

    import torch
    from pydvl.influence import InfluenceMode
    from pydvl.influence.torch import CgInfluence, DirectInfluence, LissaInfluence
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    torch.set_num_threads(args.threads)
    dtype = {"f64": torch.float64, "f32": torch.float32}[dtype_name]
    model, x_train, y_train, x_test, y_test = _torch_problem(args, dtype)
    n = x_train.shape[0]
    reg = 1.0 / (C_REG * n)  # mean loss -> Hessian of the mean objective (+ bias penalty)
    loss = nn.BCEWithLogitsLoss()
    make = {
        "direct": lambda: DirectInfluence(model, loss, regularization=reg),
        "cg": lambda: CgInfluence(model, loss, regularization=reg),
        "blockcg": lambda: CgInfluence(model, loss, regularization=reg,
                                       solve_simultaneously=True),
        "lissa": lambda: LissaInfluence(model, loss, regularization=reg),
    }[method]

    def run():
        start = time.perf_counter()
        loader = DataLoader(TensorDataset(x_train, y_train), batch_size=args.batch_size)
        influence_model = make().fit(loader)
        fitted = time.perf_counter()
        values = influence_model.influences(x_test, y_test, x_train, y_train,
                                            mode=InfluenceMode.Up)  # (m, n) = -I
        out = -values.detach().double().numpy().T
        done = time.perf_counter()
        return {"result": out, "parts": {"fit": fitted - start, "influences": done - fitted}}

    return run


def case_captum(args, dtype_name):
    import time

    import torch
    from captum.influence import NaiveInfluenceFunction
    from torch import nn
    from torch.utils.data import TensorDataset

    torch.set_num_threads(args.threads)
    dtype = {"f64": torch.float64, "f32": torch.float32}[dtype_name]
    model, x_train, y_train, x_test, y_test = _torch_problem(args, dtype)
    n, d = x_train.shape
    checkpoint = os.path.join(args.scratch, f"captum_{dtype_name}.pt")
    torch.save(model.state_dict(), checkpoint)  # captum loads parameters from a file

    def run():
        start = time.perf_counter()
        influence_model = NaiveInfluenceFunction(
            model, TensorDataset(x_train, y_train), checkpoint,
            loss_fn=nn.BCEWithLogitsLoss(reduction="sum"), batch_size=args.batch_size,
            sample_wise_grads_per_batch=True, projection_dim=d + 1, hessian_reg=1.0 / C_REG)
        built = time.perf_counter()
        scores = influence_model.influence((x_test, y_test))  # (m, n) = -I / n
        out = -n * scores.detach().double().numpy().T
        done = time.perf_counter()
        return {"result": out, "parts": {"build": built - start, "influence": done - built}}

    return run


def case_function(name: str, args):
    if name.startswith("floor_"):
        return case_floor(args, np.float32 if name.endswith("f32") else np.float64)
    if name == "numpy_f64":
        return case_numpy(args)
    if name in ("skinfluence_f64", "skinfluence_f32"):
        return case_skinfluence(args, np.float32 if name.endswith("f32") else np.float64)
    if name == "skinfluence_estimator":
        return case_skinfluence_estimator(args)
    if name == "pyinfluence":
        return case_pyinfluence(args)
    if name.startswith("pydvl_"):
        _, method, dtype_name = name.split("_")
        return case_pydvl(args, method, dtype_name)
    if name.startswith("captum_naive_"):
        return case_captum(args, name.rsplit("_", 1)[1])
    raise ValueError(f"unknown case {name!r}")


# ----------------------------------------------------------------------------- report


def bias_penalized_gap(args) -> float:
    """Max relative change of the exact matrix when the intercept is also penalized."""
    from scipy.special import expit

    X, y, Xt, yt, coef, intercept = load(args, "X", "y", "Xt", "yt", "coef", "intercept")
    n, d = X.shape
    w, b = coef[0], intercept[0]
    prob = expit(X @ w + b)
    curv = prob * (1 - prob)
    Xa = np.hstack([X, np.ones((n, 1))])
    hess = Xa.T @ (Xa * curv[:, None]) / n
    resid_t = expit(Xt @ w + b) - yt
    grads_t = np.hstack([Xt, np.ones((len(yt), 1))]) * resid_t[:, None]
    results = []
    for penalize_bias in (False, True):
        reg = np.full(d + 1, 1.0 / (C_REG * n))
        reg[d] = reg[d] if penalize_bias else 0.0
        factors = np.linalg.solve(hess + np.diag(reg), grads_t.T)
        results.append(-(prob - y)[:, None] * (Xa @ factors))
    return H.accuracy(results[1], results[0])["max_rel"]


def _dtype_of(case: str) -> str:
    return "f32" if case.endswith("f32") else "f64"


def _ratio(a, b, digits=2) -> str:
    return f"{a / b:.{digits}f}x" if (a and b) else "-"


def report(args, runs: dict, meta: dict) -> str:
    """Markdown table; each case is compared with the floor and skinfluence of its dtype."""
    floors = {dt: runs.get(f"floor_{dt}", {}) for dt in ("f64", "f32")}
    ours = {dt: runs.get(f"skinfluence_{dt}", {}) for dt in ("f64", "f32")}
    ref = H.load_result(args, REFERENCE)
    rows = []
    for case, run in runs.items():
        dt = _dtype_of(case)
        best, cpu = run.get("best"), run.get("cpu")
        result = H.load_result(args, case)
        acc = H.accuracy(result, ref) if (result is not None and ref is not None) else None
        slope = (float(np.vdot(result, ref) / np.vdot(result, result))
                 if acc is not None else None)
        rows.append([
            case, H.outcome(run, args.timeout), H.fmt_parts(run.get("parts", {})),
            _ratio(best, floors[dt].get("best")), _ratio(cpu, floors[dt].get("cpu")),
            _ratio(best, ours[dt].get("best"), 1),
            f"{acc['max_rel']:.1e}" if acc else "-",
            f"{acc['pearson']:.7f}" if acc else "-",
            f"{slope:.5f}" if slope is not None else "-",
            f"{run.get('peak_rss_mib', float('nan')):.0f} ({run['baseline_rss_mib']:.0f})",
        ])
    header = ["case", "wall (min) [cpu min]", "parts of best rep (wall)",
              "x floor, same dtype (wall)", "x floor (cpu)", "x skinfluence same dtype (wall)",
              "max rel err vs skinfluence f64", "Pearson", "LS slope on ref",
              "peak RSS MiB (after load)"]
    lines = [
        f"### Dense binary logistic regression, n={args.n}, d={args.d}, m={args.m} test points",
        "",
        f"- {meta['machine']}",
        f"- sklearn fit (untimed in every case): {meta['fit_s']:.2f} s, {meta['n_iter']} "
        f"lbfgs iterations; up to {args.reps} reps, timeout {args.timeout:.0f} s per rep, "
        f"torch loader batch {args.batch_size}",
        f"- penalizing the intercept too (pyDVL, captum) changes the exact matrix by "
        f"max rel {meta['bias_gap']:.1e}",
        "",
        H.markdown_table(header, rows),
        "",
        targets(runs),
    ]
    return "\n".join(lines)


def targets(runs: dict) -> str:
    """The issue's targets, from the figures of this run (wall-clock minima)."""
    def best(case):
        return runs.get(case, {}).get("best")

    lines = ["Targets (wall minima of this run):"]
    for dt in ("f64", "f32"):
        if best(f"skinfluence_{dt}") and best(f"floor_{dt}"):
            lines.append(f"- skinfluence {dt} / floor {dt} = "
                         f"{best(f'skinfluence_{dt}') / best(f'floor_{dt}'):.2f} (target <= 1.2)")
    ours = min((b for b in (best("skinfluence_f64"), best("skinfluence_f32")) if b), default=None)
    for peer, goal in (("pydvl_", 4.0), ("captum_", 15.0), ("pyinfluence", 1.0)):
        times = {c: r["best"] for c, r in runs.items() if c.startswith(peer) and r.get("best")}
        if times and ours:
            fastest = min(times, key=times.get)
            lines.append(f"- fastest {peer.rstrip('_')} case ({fastest}, "
                         f"{H.fmt_seconds(times[fastest])}) / fastest skinfluence "
                         f"({H.fmt_seconds(ours)}) = {times[fastest] / ours:.1f}x"
                         f" (target >= {goal:g}x)")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="training rows")
    parser.add_argument("--d", type=int, default=200, help="features")
    parser.add_argument("--m", type=int, default=100, help="test points")
    parser.add_argument("--batch-size", type=int, default=10_000,
                        help="torch DataLoader batch size for pyDVL and captum")
    parser.add_argument("--peer-python", default=None,
                        help="python that runs the peer cases (default: this one)")
    parser.add_argument("--json", default=None, help="also write all figures to this file")
    H.add_common_arguments(parser, reps=3, timeout=300.0)
    args = parser.parse_args(argv)
    machine = H.start(args, case_function, f"peers_n{args.n}_d{args.d}_m{args.m}")
    if machine is None:
        return
    meta = {"machine": machine}
    key = {"problem": "dense-binary", "n": args.n, "d": args.d, "m": args.m, "seed": args.seed}
    meta.update(H.cached_prepare(args, key, lambda: prepare(args)))
    meta["bias_gap"] = bias_penalized_gap(args)
    cases = CASES if args.cases is None else args.cases.split(",")
    if REFERENCE not in cases:
        cases = [REFERENCE] + cases
    runs = H.run_cases(SCRIPT, cases, args, width=24, python_for=lambda case: (
        None if case.startswith(("floor", "numpy", "skinfluence")) else args.peer_python))
    table = report(args, runs, meta)
    print("\n" + table)
    if args.profile:
        H.print_profiles([H.launch(SCRIPT, "skinfluence_f64", args, profile=True)])
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "meta": meta, "runs": runs}, f, indent=1, default=str)


if __name__ == "__main__":
    main()
