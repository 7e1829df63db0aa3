"""Kernel ridge regression with influence functions and exact leave-one-out."""

from __future__ import annotations

import numpy as np
from sklearn import kernel_ridge as _sk
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from ._adapters import check_features, register_objective
from ._kernel import KernelObjective, KernelSpec, make_kernel_map
from .linear_model._ridge import RegressionInfluence, _single_alpha, regression_targets
from .losses import SquaredError
from .mixin import InfluenceMixin

__all__ = ["KernelRidge", "kernel_ridge_objective"]


def _kernel_ridge_spec(est) -> KernelSpec:
    """The kernel exactly as ``KernelRidge._get_kernel`` evaluates it."""
    if callable(est.kernel):
        params = est.kernel_params or {}
    else:
        params = {"gamma": est.gamma, "degree": est.degree, "coef0": est.coef0}
    return KernelSpec(est.kernel, params, matrix_callable=False)


def kernel_ridge_objective(est, X, y, sample_weight=None, *, kernel_map="exact",
                           n_components: int = 1000, eigenvalue_cutoff: float = 1e-12,
                           random_state=0) -> KernelObjective:
    """Objective of a fitted ``sklearn.kernel_ridge.KernelRidge``.

    scikit-learn solves ``(K + alpha S^-1) beta = y`` (with sample weights ``S``), the
    minimizer of ``sum_i s_i ||y_i - (K beta)_i||^2 + alpha beta^T K beta`` over the
    dual coefficients; there is no intercept.  Halved, it is a linear objective on the
    whitened kernel map with the loss ``0.5 ||raw - y||^2`` and penalty ``alpha``.  It
    is quadratic: Newton leave-one-out is exact.

    Parameters
    ----------
    est : fitted sklearn.kernel_ridge.KernelRidge (one alpha for all targets)
    X, y, sample_weight : the training data (``X`` the kernel matrix if precomputed)
    kernel_map : {"exact", "nystroem"}, default="exact"
        ``"nystroem"`` projects the Hessian on ``n_components`` landmarks (the raw
        predictions stay the model's exact ones).
    n_components : int, default=1000
    eigenvalue_cutoff : float, default=1e-12
    random_state : int, RandomState instance or None, default=0
    """
    check_is_fitted(est)
    alpha = _single_alpha(est.alpha, "KernelRidge")
    X = check_features(est, X)
    dual = np.asarray(est.dual_coef_, dtype=np.float64)
    dual = dual.reshape(dual.shape[0], -1)
    K = dual.shape[1]
    if dual.shape[0] != X.shape[0]:
        raise ValueError(
            f"X has {X.shape[0]} rows but the model was fitted on {dual.shape[0]}."
        )
    y_enc = regression_targets(y, X.shape[0], K)
    sw = _check_sample_weight(sample_weight, X, dtype=np.float64)
    kmap = make_kernel_map(_kernel_ridge_spec(est), kernel_map, n_components=n_components,
                           eigenvalue_cutoff=eigenvalue_cutoff,
                           random_state=random_state).fit(X)
    exact_raw = None
    if not kmap.basis_is_training:
        def exact_raw(inputs):
            return np.asarray(est.predict(inputs)).reshape(inputs.shape[0], K)

    def encode_target(y_new):
        y_new = np.asarray(y_new, dtype=np.float64)
        return regression_targets(y_new, y_new.shape[0], K)

    return KernelObjective(
        SquaredError(), kmap, X, y_enc, kmap.coef_from_dual(dual).T, fit_intercept=False,
        penalty=alpha, sample_weight=sw, exact_raw=exact_raw,
        check_inputs=lambda X_new: check_features(est, X_new), encode_target=encode_target)


class KernelRidge(InfluenceMixin, _sk.KernelRidge):
    """scikit-learn's ``KernelRidge`` with influence functions and exact leave-one-out.

    The objective is scikit-learn's
    ``sum_i s_i (y_i - f(x_i))^2 + alpha ||f||_H^2`` (no intercept), handled as a
    linear model on the whitened empirical kernel map (an ``O(n^3)``
    eigendecomposition, once per fit).  It is quadratic: ``loo_effect(...,
    method="newton")`` and ``loo_raw_predictions()`` are exact leave-one-out results.
    :meth:`perturbation_influence` differentiates through ``k(x_i, .)`` for the
    ``"linear"``, ``"poly"``, ``"rbf"`` and ``"sigmoid"`` kernels (with ``gamma`` held
    at its value).

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from skinfluence.kernel_ridge import KernelRidge
    >>> X, y = load_diabetes(return_X_y=True)
    >>> kr = KernelRidge(alpha=0.1, kernel="rbf", gamma=0.5).fit(X[:300], y[:300])
    >>> kr.loo_effect(X[300:302], y[300:302], method="newton").shape
    (300, 2)
    """

    def _influence_objective(self, X, y, sample_weight):
        return kernel_ridge_objective(self, X, y, sample_weight)

    def influence_summary(self, **options) -> RegressionInfluence:
        """Leverage, Cook's distance and exact leave-one-out residuals (one target).

        Returns
        -------
        RegressionInfluence
            Computed on the kernel map's coordinates (``dfbetas`` refer to them).
        """
        return RegressionInfluence(self.influence_explainer(**options))


register_objective(_sk.KernelRidge, kernel_ridge_objective)
