"""Shared pieces of the kernel estimators' objective builders."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._kernel import KernelSpec

__all__ = ["svc_kernel_spec", "resolve_gamma", "dual_over_rows"]


def resolve_gamma(gamma, X, sample_weight=None) -> float:
    """SVC's ``gamma``: ``"scale"`` is ``1 / (n_features * X.var())``, ``"auto"`` ``1 / n_features``.

    With ``sample_weight`` the variance is that of the weighted rows, so that integer
    weights and repeated rows give the same kernel.
    """
    if isinstance(gamma, str):
        if gamma == "auto":
            return 1.0 / X.shape[1]
        if gamma == "scale":
            w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, float)
            total = w.sum() * X.shape[1]
            if sp.issparse(X):
                mean = float(np.asarray(X.T @ w).sum()) / total
                second = float(np.asarray(X.multiply(X).T @ w).sum()) / total
            else:
                mean = float(w @ np.asarray(X).sum(axis=1)) / total
                second = float(w @ np.square(np.asarray(X)).sum(axis=1)) / total
            var = second - mean**2
            return 1.0 / (X.shape[1] * var) if var > 0 else 1.0
        raise ValueError(f"gamma must be 'scale', 'auto' or a float, got {gamma!r}.")
    return float(gamma)


def svc_kernel_spec(kernel, gamma: float, degree, coef0) -> KernelSpec:
    """The kernel of libsvm-style estimators (callables return the whole matrix)."""
    params = {} if callable(kernel) else {"gamma": gamma, "degree": degree, "coef0": coef0}
    return KernelSpec(kernel, params, matrix_callable=True)


def dual_over_rows(n_rows: int, support, dual_coef) -> np.ndarray:
    """Dual coefficients over all training rows (zero outside the support), (n, K)."""
    dual_coef = np.atleast_2d(np.asarray(dual_coef, dtype=np.float64))
    out = np.zeros((n_rows, dual_coef.shape[0]))
    out[np.asarray(support, dtype=np.intp)] = dual_coef.T
    return out
