"""From a fitted scikit-learn estimator and its training data to a fitted objective.

Each builder reads the estimator's fitted state and reproduces the objective *its*
solver minimized (penalty, intercept handling, sample and class weights), so that
influence describes the model that was actually fitted.  :func:`explain` looks the
builder up by estimator class; :func:`register_objective` adds one.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils import assert_all_finite
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from ._streaming import is_streamed, release_rows, to_numpy
from .losses import BinaryLogistic, SoftmaxCrossEntropy
from .objective import GLMObjective, LinearDesign, row_slices, rows_per_chunk

__all__ = ["explain", "register_objective", "logistic_regression_objective"]

_BUILDERS: dict[type, callable] = {}


def register_objective(estimator_class: type, builder) -> None:
    """Teach :func:`explain` how to build the objective of an estimator class.

    ``builder(estimator, X, y, sample_weight)`` must return a
    :class:`~skinfluence.objective.GLMObjective` at the estimator's fit.
    """
    _BUILDERS[estimator_class] = builder


def _find_builder(estimator):
    for cls in type(estimator).__mro__:
        if cls in _BUILDERS:
            return _BUILDERS[cls]
    supported = ", ".join(sorted(c.__name__ for c in _BUILDERS))
    raise TypeError(
        f"skinfluence cannot explain a {type(estimator).__name__}; supported: {supported}. "
        "Subclass skinfluence.InfluenceMixin to add your own."
    )


def explain(estimator, X, y, sample_weight=None, **options):
    """Influence of the training rows of an estimator fitted elsewhere, without refitting.

    Parameters
    ----------
    estimator : fitted estimator
        A plain scikit-learn estimator (e.g. ``sklearn.linear_model.LogisticRegression``)
        or a skinfluence one.
    X : array-like or sparse matrix of shape (n_samples, n_features)
        The data it was fitted on, in the same row order.
    y : array-like of shape (n_samples,)
    sample_weight : array-like of shape (n_samples,), default=None
        The weights it was fitted with.
    **options
        Engine options of :class:`~skinfluence.Influence` (``solver``, ``damping``,
        ``solver_options``, ``n_jobs``, ``working_memory``, ``convergence_tol``,
        ``random_state``).

    Returns
    -------
    Influence
        With ``influence``, ``loo_effect``, ``self_influence``,
        ``rank_training_points``, ``perturbation_influence`` and the rest.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.preprocessing import scale
    >>> import skinfluence
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = scale(X)
    >>> clf = LogisticRegression(tol=1e-10, max_iter=1000).fit(X, y)
    >>> inf = skinfluence.explain(clf, X, y)
    >>> inf.influence(X[:2], y[:2]).shape
    (569, 2)
    """
    from ._influence import Influence

    objective = _find_builder(estimator)(estimator, X, y, sample_weight)
    return Influence(objective, **options)


# ---------------------------------------------------------------------------------
# shared validation
# ---------------------------------------------------------------------------------
def check_features(estimator, X):
    """Validate inputs against a fitted estimator (shape, names, finiteness).

    Memory-mapped files and dask arrays are checked chunk by chunk and returned as
    they are (see :func:`check_streamed_features`).
    """
    if is_streamed(X):
        return check_streamed_features(estimator, X)
    _refuse_text_columns(X)
    return validate_data(
        estimator, X, reset=False, accept_sparse="csr", dtype=[np.float64, np.float32]
    )


def _refuse_text_columns(X) -> None:
    """A DataFrame's categorical or string columns get a message that says what to do.

    scikit-learn would fail on the first category that is not a number ("could not
    convert string to float"), or silently treat numeric category codes as numbers.
    """
    dtypes = getattr(X, "dtypes", None)
    if dtypes is None or not hasattr(X, "columns") or not hasattr(dtypes, "items"):
        return
    text = {str(col): str(dtype) for col, dtype in dtypes.items()
            if str(dtype) in ("category", "str", "string") or str(dtype).startswith("string")}
    if text:
        kinds = ", ".join(sorted(set(text.values())))
        raise ValueError(
            f"X has non-numeric column(s) {list(text)} ({kinds}); encode them before the "
            "model, e.g. with a OneHotEncoder in a skinfluence.pipeline.Pipeline, whose "
            "influence methods take the raw DataFrame."
        )


def check_streamed_features(estimator, X):
    """Validate a memory-mapped or dask ``X`` without holding it in memory.

    scikit-learn's validation would read the whole array at once (a dask array is
    computed, every page of a memory-mapped file becomes resident).  Here the shape,
    dtype and feature names are checked on the first rows with scikit-learn's own
    checks and messages, and finiteness one chunk at a time, giving each chunk's pages
    back once it is checked.  ``X`` is returned unconverted: the engine reads it in
    chunks.
    """
    if X.ndim != 2:
        raise ValueError(
            f"Expected 2D array, got {X.ndim}D array instead (shape {X.shape}). Reshape "
            "your data with array.reshape(-1, 1) for a single feature or "
            "array.reshape(1, -1) for a single sample."
        )
    if X.dtype.kind not in "biuf":
        raise ValueError(
            f"X has dtype {X.dtype}; a memory-mapped or dask X must hold real numbers "
            "(it is read in chunks, not converted up front)."
        )
    head = to_numpy(X[:2])
    # scikit-learn's checks of the feature count, names and minimum number of rows
    validate_data(estimator, head, reset=False, ensure_all_finite=False,
                  dtype=[np.float64, np.float32])
    if X.dtype.kind == "f":
        n = X.shape[0]
        row_bytes = 2.0 * X.dtype.itemsize * X.shape[1]
        for sl in row_slices(n, rows_per_chunk(row_bytes, n)):
            assert_all_finite(to_numpy(X[sl]), input_name="X")
            release_rows(X, sl)
    return X


def encode_labels(classes: np.ndarray, y) -> np.ndarray:
    """Index of each label in ``classes``; a clear error for unseen labels."""
    y = column_or_1d(y, warn=True)
    idx = np.searchsorted(classes, y)
    idx = np.clip(idx, 0, len(classes) - 1)
    unseen = classes[idx] != y
    if np.any(unseen):
        bad = np.unique(np.asarray(y)[unseen])[:5]
        raise ValueError(
            f"y contains labels not seen during fit: {bad.tolist()}; "
            f"the model knows {classes.tolist()}."
        )
    return idx


def training_inputs(estimator, X, y, sample_weight):
    """Validated training data for a fitted estimator."""
    check_is_fitted(estimator)
    X = check_features(estimator, X)
    y = column_or_1d(y, warn=True)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}.")
    sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
    return X, y, sample_weight


# ---------------------------------------------------------------------------------
# logistic regression
# ---------------------------------------------------------------------------------
def _logistic_penalty(est) -> tuple[float, float]:
    """(l1_ratio, C) that the estimator actually used."""
    penalty = getattr(est, "penalty", "deprecated")
    C = float(est.C)
    l1_ratio = getattr(est, "l1_ratio", 0.0)
    if penalty is None or penalty == "none":
        return 0.0, np.inf
    if penalty == "l2":
        l1_ratio = 0.0
    elif penalty == "l1":
        l1_ratio = 1.0
    return float(l1_ratio or 0.0), C


def logistic_regression_objective(est, X, y, sample_weight=None) -> GLMObjective:
    """Objective of a fitted ``sklearn.linear_model.LogisticRegression``.

    scikit-learn minimizes ``C * sum_i s_i l_i + 0.5 ||w||^2`` (intercept unpenalized,
    except with ``solver="liblinear"`` where it is a penalized column of value
    ``intercept_scaling``), with ``s_i = sample_weight * class_weight``.  Dividing by
    ``C`` gives the engine's form with penalty ``1 / C``.

    An L1 or elastic-net fit is not twice differentiable: for a binary model the
    influence is computed on its active set (the non-zero coefficients, which removal
    of one row is assumed not to change); multinomial L1 fits are refused.
    """
    X, y, sw = training_inputs(est, X, y, sample_weight)
    classes = est.classes_
    y_idx = encode_labels(classes, y)
    if est.class_weight is not None:
        cw = compute_class_weight(est.class_weight, classes=classes, y=y,
                                  sample_weight=sample_weight)
        sw = sw * cw[y_idx]
    l1_ratio, C = _logistic_penalty(est)
    lam = 0.0 if not np.isfinite(C) else (1.0 - l1_ratio) / C
    liblinear = getattr(est, "solver", None) == "liblinear"
    fit_intercept = bool(est.fit_intercept)
    scaling = float(est.intercept_scaling) if (liblinear and fit_intercept) else 1.0
    coef = np.asarray(est.coef_, dtype=np.float64)
    if hasattr(coef, "toarray"):
        coef = coef.toarray()
    intercept = np.asarray(est.intercept_, dtype=np.float64).reshape(-1)
    binary = coef.shape[0] == 1
    active = None
    if l1_ratio > 0 and np.isfinite(C):
        if not binary:
            raise ValueError(
                "Influence is not defined for an L1/elastic-net multinomial fit (the "
                "objective is not twice differentiable); refit with l1_ratio=0."
            )
        # active-set influence: the zero coefficients stay zero
        active = np.flatnonzero(coef[0] != 0)
        X = X[:, active]
        coef = coef[:, active]
    theta = coef
    if fit_intercept:
        theta = np.hstack([coef, (intercept / scaling)[:, None]])
    penalty = np.full(theta.shape[1], lam)
    if fit_intercept and not liblinear:
        penalty[-1] = 0.0
    design = LinearDesign(X, fit_intercept=fit_intercept, intercept_scaling=scaling)
    loss = BinaryLogistic() if binary else SoftmaxCrossEntropy()
    y_enc = (y_idx == 1).astype(np.float64) if binary else y_idx

    def featurize(X_new):
        X_new = check_features(est, X_new)
        if active is not None:
            X_new = X_new[:, active]
        return LinearDesign(X_new, fit_intercept=fit_intercept, intercept_scaling=scaling)

    def encode_target(y_new):
        idx = encode_labels(classes, y_new)
        return (idx == 1).astype(np.float64) if binary else idx

    cls = GLMObjective if active is None else _ActiveSetObjective
    objective = cls(
        loss, design, y_enc, theta, penalty=penalty, sample_weight=sw,
        featurize=featurize, encode_target=encode_target,
    )
    if active is not None:
        objective.active_columns, objective.n_all_features = active, est.n_features_in_
    return objective


class _ActiveSetObjective(GLMObjective):
    """A linear objective on a subset of the input columns (L1 active set).

    Inputs outside the active set do not move the fit (their coefficients are zero and
    assumed to stay zero), so their perturbation influence is zero.
    """

    @property
    def n_input_features(self) -> int:
        return self.n_all_features

    def input_cross_products(self, factors, index):
        active = super().input_cross_products(factors, index)
        full = np.zeros(active.shape[:-1] + (self.n_all_features,))
        full[..., self.active_columns] = active
        return full


def _register_sklearn():
    from sklearn.linear_model import LogisticRegression

    register_objective(LogisticRegression, logistic_regression_objective)


_register_sklearn()
