"""Ridge and least squares with influence, exact leave-one-out, leverage and Cook's distance.

The objective is quadratic, so the engine's one-step Newton leave-one-out
(``loo_effect(method="newton")``, ``loo_raw_predictions()``, ``loo_params(method=
"newton")``) is exact: it is the classic hat-matrix identity ``e_i / (1 - h_ii)``
without any refit.
"""

from __future__ import annotations

import numpy as np
from sklearn import linear_model as _sk
from sklearn.utils import assert_all_finite, gen_batches
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from .._adapters import check_features, register_objective
from .._influence import Influence
from ..losses import SquaredError
from ..mixin import InfluenceMixin
from ..objective import GLMObjective, LinearDesign

__all__ = [
    "Ridge",
    "LinearRegression",
    "RegressionInfluence",
    "ridge_objective",
]


def _single_alpha(alpha, name: str) -> float:
    alpha = np.atleast_1d(np.asarray(alpha, dtype=np.float64))
    if not np.all(alpha == alpha[0]):
        raise ValueError(
            f"{name} has one alpha per target ({alpha.tolist()}); influence needs a single "
            "alpha (the targets then share one Hessian). Fit one model per target."
        )
    return float(alpha[0])


def regression_targets(y, n_samples: int, n_outputs: int) -> np.ndarray:
    """Targets as float, (n,) for one output or (n, n_outputs); clear shape errors."""
    y = np.asarray(y, dtype=np.float64)
    # a NaN target would silently turn every influence value into NaN
    assert_all_finite(y, input_name="y")
    if y.shape[0] != n_samples:
        raise ValueError(f"X has {n_samples} rows but y has {y.shape[0]}.")
    flat = y.reshape(n_samples, -1)
    if flat.shape[1] != n_outputs:
        raise ValueError(
            f"y has {flat.shape[1]} target(s) but the model was fitted on {n_outputs}."
        )
    return flat[:, 0] if n_outputs == 1 else flat


def ridge_objective(est, X, y, sample_weight=None) -> GLMObjective:
    """Objective of a fitted ``sklearn.linear_model.Ridge`` or ``LinearRegression``.

    scikit-learn minimizes ``sum_i s_i ||y_i - W x_i - b||^2 + alpha ||W||^2``; it
    centers the data (with the sample weights) to fit the intercept, which is the same
    as leaving the intercept unpenalized.  Halved, it is the engine's form with the
    loss ``0.5 ||raw - y||^2`` and penalty ``alpha`` (0 for ``LinearRegression``).
    ``positive=True`` (a bound-constrained fit) and one alpha per target are refused.
    """
    check_is_fitted(est)
    if getattr(est, "positive", False):
        raise ValueError(
            "Influence is not defined for positive=True (a bound-constrained fit is not "
            "a stationary point of the unconstrained objective)."
        )
    alpha = _single_alpha(getattr(est, "alpha", 0.0), type(est).__name__)
    X = check_features(est, X)
    coef = np.atleast_2d(np.asarray(est.coef_, dtype=np.float64))
    K = coef.shape[0]
    y_enc = regression_targets(y, X.shape[0], K)
    sw = _check_sample_weight(sample_weight, X, dtype=np.float64)
    fit_intercept = bool(est.fit_intercept)
    if fit_intercept:
        intercept = np.broadcast_to(np.asarray(est.intercept_, dtype=np.float64), (K,))
        coef = np.hstack([coef, intercept[:, None]])

    def featurize(X_new):
        return LinearDesign(check_features(est, X_new), fit_intercept=fit_intercept)

    def encode_target(y_new):
        y_new = np.asarray(y_new, dtype=np.float64)
        return regression_targets(y_new, y_new.shape[0], K)

    return GLMObjective(SquaredError(), LinearDesign(X, fit_intercept=fit_intercept), y_enc,
                        coef, penalty=alpha, sample_weight=sw, featurize=featurize,
                        encode_target=encode_target)


class RegressionInfluence:
    """Regression diagnostics of a fitted (ridge) regression, from the influence engine.

    For ``alpha = 0`` these are the classic quantities and equal statsmodels'
    ``OLSInfluence``; with a ridge penalty they use the ridge hat matrix
    ``A = S^{1/2} X~ H^-1 X~^T S^{1/2}`` (``H`` the Hessian of the objective) and its
    effective degrees of freedom ``p_eff = trace(A)`` in place of the number of
    parameters.

    Parameters
    ----------
    influence : Influence
        The engine of a single-output squared-error objective
        (``estimator.influence_explainer()`` or ``skinfluence.explain(ridge, X, y)``).
    batch_size : int, default=1024
        Rows per block of the exact leave-one-out parameter changes.

    Attributes
    ----------
    hat_matrix_diag : ndarray of shape (n,)
        Leverage ``h_ii = s_i x~_i^T H^-1 x~_i``.
    resid : ndarray of shape (n,)
        ``y - y_hat``.
    resid_press : ndarray of shape (n,)
        Exact leave-one-out residuals ``y_i - y_hat_(i)(x_i) = e_i / (1 - h_ii)``.
    params_change : ndarray of shape (n, n_params)
        Exact change of ``[coef_, intercept_]`` when each row is removed
        (``theta_(i) - theta``).
    df_model : float
        ``p_eff = trace(A)`` (the number of parameters when unpenalized).
    scale : float
        ``sigma^2 = sum_i s_i e_i^2 / (n - p_eff)``.
    sigma2_not_obsi : ndarray of shape (n,)
        ``sigma^2`` without row ``i`` (exact for least squares).
    cooks_distance : ndarray of shape (n,)
        ``sum_j s_j (y_hat_j - y_hat_j(i))^2 / (p_eff sigma^2)``, the change in all
        fitted values when row ``i`` is removed (exact, no refit).
    resid_studentized_internal, resid_studentized_external : ndarray of shape (n,)
        ``sqrt(s_i) e_i / (sigma sqrt(1 - h_ii))`` with ``sigma`` from all rows, or
        without row ``i``.
    dffits_internal, dffits : ndarray of shape (n,)
        The studentized residuals times ``sqrt(h_ii / (1 - h_ii))``.
    dfbetas : ndarray of shape (n, n_params)
        ``(theta - theta_(i)) / (sigma_(i) sqrt(diag(H^-1)))``.

    Examples
    --------
    >>> import numpy as np
    >>> from skinfluence.linear_model import LinearRegression
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randn(50, 3)
    >>> y = X @ [1.0, -2.0, 0.5] + rng.randn(50)
    >>> diag = LinearRegression().fit(X, y).influence_summary()
    >>> bool(np.allclose(diag.resid_press, diag.resid / (1 - diag.hat_matrix_diag)))
    True
    """

    def __init__(self, influence: Influence, *, batch_size: int = 1024):
        obj = influence.objective
        if not isinstance(obj.loss, SquaredError) or obj.n_outputs != 1:
            raise ValueError(
                "Regression diagnostics need a single-output squared-error objective "
                f"(got {type(obj.loss).__name__} with {obj.n_outputs} outputs)."
            )
        influence._ensure_fitted()
        self.influence = influence
        n = obj.n_samples
        sw = obj.sample_weight
        self.resid = np.asarray(obj.y, dtype=np.float64).reshape(-1) - obj.raw[:, 0]
        quad = np.empty(n)
        for sl in gen_batches(n, batch_size):
            quad[sl] = influence.solver_.quadratic_forms(obj.design.rows(sl).dense().T)
        self.hat_matrix_diag = sw * quad
        self.resid_press = self.resid / (1.0 - self.hat_matrix_diag)
        self.df_model = float(self.hat_matrix_diag.sum())
        self.df_resid = n - self.df_model
        ssr = float(sw @ self.resid**2)
        self.scale = ssr / self.df_resid
        self.sigma2_not_obsi = (ssr - sw * self.resid**2 / (1.0 - self.hat_matrix_diag)) / (
            self.df_resid - 1.0)
        self.params_change = np.empty((n, obj.n_params))
        fitted_change = np.empty(n)
        for sl in gen_batches(n, batch_size):
            delta = influence.loo_params(np.arange(sl.start, sl.stop), method="newton")
            self.params_change[sl] = delta
            # sum_j s_j (x~_j . delta)^2 = delta^T (H - diag(penalty)) delta
            gram_delta = obj.hessp(delta.T) - obj.penalty[:, None] * delta.T
            fitted_change[sl] = np.einsum("ij,ji->i", delta, gram_delta)
        self.cooks_distance = fitted_change / (self.df_model * self.scale)
        root_one_minus_h = np.sqrt(1.0 - self.hat_matrix_diag)
        weighted = np.sqrt(sw) * self.resid
        self.resid_studentized_internal = weighted / (np.sqrt(self.scale) * root_one_minus_h)
        self.resid_studentized_external = weighted / (
            np.sqrt(self.sigma2_not_obsi) * root_one_minus_h)
        factor = np.sqrt(self.hat_matrix_diag / (1.0 - self.hat_matrix_diag))
        self.dffits_internal = self.resid_studentized_internal * factor
        self.dffits = self.resid_studentized_external * factor
        inv_diag = np.diag(influence.solver_.solve(np.eye(obj.n_params)))
        self.dfbetas = -self.params_change / (
            np.sqrt(self.sigma2_not_obsi)[:, None] * np.sqrt(inv_diag)[None, :])

    def summary_frame(self, feature_names=None):
        """The diagnostics as a :class:`pandas.DataFrame`, one row per training row.

        Columns follow statsmodels' ``OLSInfluence.summary_frame``: ``dfb_<name>``,
        ``cooks_d``, ``standard_resid``, ``hat_diag``, ``dffits_internal``,
        ``student_resid``, ``dffits``, plus ``resid_press``.

        Parameters
        ----------
        feature_names : list of str, default=None
            Names of the coefficients (``x1, x2, ...`` when None, as statsmodels); the intercept, if
            any, is ``const``.
        """
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - pandas is a test dependency
            raise ImportError("summary_frame() needs pandas: pip install pandas") from exc
        design = self.influence.objective.design
        d = design.n_features
        names = (list(feature_names) if feature_names is not None
                 else [f"x{j + 1}" for j in range(d)])
        if len(names) != d:
            raise ValueError(f"feature_names has {len(names)} names for {d} features.")
        if design.fit_intercept:
            names = names + ["const"]
        frame = {f"dfb_{name}": self.dfbetas[:, j] for j, name in enumerate(names)}
        frame.update(
            cooks_d=self.cooks_distance,
            standard_resid=self.resid_studentized_internal,
            hat_diag=self.hat_matrix_diag,
            dffits_internal=self.dffits_internal,
            student_resid=self.resid_studentized_external,
            dffits=self.dffits,
            resid_press=self.resid_press,
        )
        return pd.DataFrame(frame)


class _RegressionInfluenceMethods:
    """``influence_summary()`` for the regression estimators."""

    def influence_summary(self, **options) -> RegressionInfluence:
        """Leverage, Cook's distance, exact leave-one-out residuals and friends.

        Parameters
        ----------
        **options
            Engine options (see :class:`~skinfluence.Influence`).

        Returns
        -------
        RegressionInfluence
            With ``summary_frame()`` for a pandas table like statsmodels'.
        """
        return RegressionInfluence(self.influence_explainer(**options))

    def _influence_objective(self, X, y, sample_weight):
        return ridge_objective(self, X, y, sample_weight)


class Ridge(_RegressionInfluenceMethods, InfluenceMixin, _sk.Ridge):
    """scikit-learn's ``Ridge`` with influence functions and exact leave-one-out.

    The objective is scikit-learn's ``sum_i s_i (y_i - w^T x_i - b)^2 + alpha ||w||^2``
    (the intercept, fitted by centering, is unpenalized).  It is quadratic, so
    ``loo_effect(..., method="newton")``, ``self_loo_effect(method="newton")``,
    ``loo_raw_predictions()`` and ``loo_params(method="newton")`` are *exact*
    leave-one-out results (the hat-matrix identities, no refit), and
    :meth:`influence_summary` gives leverage and Cook's distance.  ``alpha`` must be
    one number (or the same for every target); ``positive=True`` is not supported.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from skinfluence.linear_model import Ridge
    >>> X, y = load_diabetes(return_X_y=True)
    >>> reg = Ridge(alpha=0.1).fit(X, y)
    >>> press = y - reg.influence_explainer().loo_raw_predictions()[:, 0]  # exact LOO residuals
    >>> reg.influence_summary().summary_frame().shape
    (442, 18)
    """


class LinearRegression(_RegressionInfluenceMethods, InfluenceMixin, _sk.LinearRegression):
    """scikit-learn's ``LinearRegression`` with influence functions and exact leave-one-out.

    Least squares ``sum_i s_i (y_i - w^T x_i - b)^2``: influence, exact leave-one-out
    (``method="newton"``), and :meth:`influence_summary` (leverage, Cook's distance,
    studentized residuals, DFFITS, DFBETAS) equal to statsmodels' ``OLSInfluence``.
    A rank-deficient ``X`` has a singular Hessian: the engine adds a small damping and
    warns.  ``positive=True`` is not supported.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from skinfluence.linear_model import LinearRegression
    >>> X, y = load_diabetes(return_X_y=True)
    >>> ols = LinearRegression().fit(X, y)
    >>> cooks = ols.influence_summary().cooks_distance
    >>> int(cooks.argmax())
    382
    """


register_objective(_sk.Ridge, ridge_objective)
register_objective(_sk.LinearRegression, ridge_objective)
