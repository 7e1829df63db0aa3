"""Kernel SVM influence at scale: exact empirical kernel map vs Nystroem.

Times the full influence of every training row on 100 test points (the
``(n_train, 100)`` matrix of ``I_up,loss``) for

1. ``n = 5,000``: a libsvm ``SVC`` (RBF), explained with the exact whitened kernel map
   (an ``O(n^3)`` eigendecomposition) and, on the same fit, with a Nystroem map of
   1,000 landmarks; the agreement of the two influence matrices is reported;
2. ``n = 100,000``: a smooth-hinge kernel SVM (:class:`~skinfluence.svm.
   KernelSmoothHingeClassifier`) fitted on a 1,000-component Nystroem map (libsvm
   cannot fit 100,000 rows in reasonable time), explained on the same map.

Data: Diabetes 130-US hospitals (``../shared/data/diabetes130``, 101,766 encounters;
target "readmitted at all"; numeric columns plus one-hot demographics and
medication changes, standardized).  Timings are wall-clock on this machine; compare
only numbers from the same run.

Usage::

    python benchmarks/bench_kernel.py            # both sizes
    python benchmarks/bench_kernel.py --quick    # n = 1,000 / 10,000 smoke run
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import skinfluence
from skinfluence.svm import KernelSmoothHingeClassifier, svc_objective

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "diabetes130"
NUMERIC = ["time_in_hospital", "num_lab_procedures", "num_procedures", "num_medications",
           "number_outpatient", "number_emergency", "number_inpatient", "number_diagnoses"]
CATEGORICAL = ["race", "gender", "age", "admission_type_id", "max_glu_serum", "A1Cresult",
               "insulin", "change", "diabetesMed"]


def load_readmissions(seed: int = 0):
    """Features and 0/1 "readmitted" labels, rows shuffled."""
    import pandas as pd

    frame = pd.read_csv(DATA / "diabetic_data.csv.gz", na_values="?", low_memory=False)
    X = pd.concat([frame[NUMERIC].astype(float),
                   pd.get_dummies(frame[CATEGORICAL].astype(str), dtype=float)], axis=1)
    y = (frame["readmitted"] != "NO").to_numpy().astype(int)
    rows = np.random.RandomState(seed).permutation(len(y))
    return X.to_numpy()[rows], y[rows]


class Timer:
    def __init__(self):
        self.laps = {}

    def __call__(self, name):
        timer = self

        class Lap:
            def __enter__(self):
                self.start = time.perf_counter()

            def __exit__(self, *exc):
                timer.laps[name] = time.perf_counter() - self.start

        return Lap()


def agreement(a: np.ndarray, b: np.ndarray, top: int = 20) -> dict:
    """Pearson R per test point (median, min) and overlap of the top-|influence| rows."""
    r = [np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(a.shape[1])]
    overlap = [len(np.intersect1d(np.argsort(-np.abs(a[:, j]))[:top],
                                  np.argsort(-np.abs(b[:, j]))[:top])) / top
               for j in range(a.shape[1])]
    return {"median_r": float(np.median(r)), "min_r": float(np.min(r)),
            "top_overlap": float(np.mean(overlap))}


def exact_vs_nystroem(X, y, X_test, y_test, n_components: int, t: float) -> None:
    n = len(y)
    timer = Timer()
    with timer("fit SVC (libsvm)"):
        svm = SVC(C=1.0, gamma="scale", tol=1e-6, cache_size=2000).fit(X, y)
    with timer("exact: kernel map (eigh)"):
        exact = skinfluence.Influence(svc_objective(svm, X, y, t=t))
    with timer("exact: factor Hessian"):
        exact.fit()
    with timer("exact: influence (n x 100)"):
        inf_exact = exact.influence(X_test, y_test)
    with timer("nystroem: kernel map"):
        approx = skinfluence.Influence(svc_objective(
            svm, X, y, t=t, kernel_map="nystroem", n_components=n_components, random_state=0))
    with timer("nystroem: factor Hessian"):
        approx.fit()
    with timer("nystroem: influence (n x 100)"):
        inf_approx = approx.influence(X_test, y_test)
    print(f"\n== SVC, n = {n:,}, {X.shape[1]} features, {len(svm.support_):,} support "
          f"vectors, t = {t}, exact map rank {exact.objective.kernel_map.n_components:,}")
    for name, seconds in timer.laps.items():
        print(f"  {name:32s} {seconds:8.2f} s")
    total_exact = sum(v for k, v in timer.laps.items() if k.startswith("exact"))
    total_nys = sum(v for k, v in timer.laps.items() if k.startswith("nystroem"))
    print(f"  total to influence: exact {total_exact:.1f} s, Nystroem ({n_components} "
          f"components) {total_nys:.1f} s, ratio {total_exact / total_nys:.1f}x")
    agree = agreement(inf_exact, inf_approx)
    print(f"  Nystroem vs exact, per test point: median Pearson R {agree['median_r']:.3f} "
          f"(min {agree['min_r']:.3f}); top-20 rows shared {agree['top_overlap']:.0%}")


def nystroem_at_scale(X, y, X_test, y_test, n_components: int, t: float) -> None:
    timer = Timer()
    model = KernelSmoothHingeClassifier(C=1.0, t=t, kernel_map="nystroem",
                                        n_components=n_components, random_state=0,
                                        tol=1e-8)
    with timer("fit (Nystroem map + Newton)"):
        model.fit(X, y)
    engine = model.influence_explainer()
    with timer("objective + factor Hessian"):
        engine.fit()
    with timer("influence (n x 100)"):
        values = engine.influence(X_test, y_test)
    print(f"\n== KernelSmoothHingeClassifier, n = {len(y):,}, Nystroem {n_components} "
          f"components, t = {t}: test accuracy {model.score(X_test, y_test):.3f}, "
          f"gradient norm {engine.diagnostics_['gradient_norm']:.1e}")
    for name, seconds in timer.laps.items():
        print(f"  {name:32s} {seconds:8.2f} s")
    print(f"  influence matrix {values.shape}, time to influence after the fit "
          f"{timer.laps['objective + factor Hessian'] + timer.laps['influence (n x 100)']:.1f} s")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--components", type=int, default=1000)
    parser.add_argument("--t", type=float, default=0.01,
                        help="smooth-hinge temperature of influence")
    args = parser.parse_args(argv)
    X, y = load_readmissions()
    n_test = 100
    X_test, y_test = X[-n_test:], y[-n_test:]
    X, y = X[:-n_test], y[:-n_test]
    scaler = StandardScaler().fit(X)
    X, X_test = scaler.transform(X), scaler.transform(X_test)
    small, large = (1000, 10000) if args.quick else (5000, 100000)
    components = min(args.components, small // 2) if args.quick else args.components
    exact_vs_nystroem(X[:small], y[:small], X_test, y_test, components, args.t)
    nystroem_at_scale(X[:large], y[:large], X_test, y_test, components, args.t)


if __name__ == "__main__":
    main()
