"""Linear SVMs: liblinear's ``LinearSVC`` and a classifier trained on the smooth hinge."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn import svm as _sk
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model._base import LinearClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import _check_sample_weight, validate_data

from .._adapters import check_features, encode_labels, register_objective, training_inputs
from .._glm_fit import fit_linear_objective, smooth_hinge_schedule
from .._margin import (
    HingeSurrogate,
    OneVsRest,
    SquaredHinge,
    check_classifier_targets,
    margin_encoder,
    margin_targets,
)
from ..losses import SmoothHinge
from ..mixin import InfluenceMixin
from ..objective import GLMObjective, LinearDesign
from ._objective import HingeGLMObjective

__all__ = [
    "LinearSVC",
    "SmoothHingeClassifier",
    "linear_svc_objective",
    "smooth_hinge_classifier_objective",
]

#: default smoothing temperature of influence on a hinge-loss SVM (paper Fig. 3)
DEFAULT_T = 0.001


def _liblinear_weights(est, y, y_idx, sample_weight, sw):
    """Per-row weights and target magnitudes as liblinear applies class weights.

    Binary: every row's C is multiplied by its class weight.  One-vs-rest: in the
    problem of class k, liblinear multiplies the C of the rows *of class k* by its
    weight and leaves the others at C (``train_one(..., weighted_C[i], param->C)``).
    """
    classes = est.classes_
    cw = compute_class_weight(est.class_weight, classes=classes, y=y,
                              sample_weight=sample_weight)
    if len(classes) == 2:
        return sw * cw[y_idx], margin_targets(y_idx, 2)
    return sw, margin_targets(y_idx, len(classes), positive_weight=cw)


def linear_svc_objective(est, X, y, sample_weight=None, *, t: float | None = None):
    """Objective of a fitted ``sklearn.svm.LinearSVC`` (liblinear).

    liblinear minimizes ``0.5 ||w~||^2 + C sum_i C_i loss(y_i w~^T x~_i)`` where
    ``x~ = [x, intercept_scaling]`` (the intercept is a *penalized* column),
    ``C_i = sample_weight_i * class_weight`` and ``loss`` is the hinge or the squared
    hinge; one-vs-rest for more than two classes.  Divided by ``C``: penalty ``1/C``
    on every column.

    ``loss="hinge"`` is not differentiable: influence uses the derivatives of
    ``SmoothHinge(t)`` at the SVM's own weights (Koh & Liang, Section 4.1) while test
    losses stay the hinge; the convergence check reads the smallest subgradient of
    the hinge objective.  ``loss="squared_hinge"`` is once differentiable and is used
    as it is (``t`` is ignored).

    Parameters
    ----------
    est : fitted sklearn.svm.LinearSVC
    X, y, sample_weight : the training data it was fitted on
    t : float, default=None
        Smoothing temperature; ``est.t`` if the estimator has one, else 0.001.
    """
    if getattr(est, "multi_class", "ovr") == "crammer_singer":
        raise ValueError(
            "Influence is not implemented for multi_class='crammer_singer' (a joint "
            "multiclass hinge); use multi_class='ovr'."
        )
    if getattr(est, "penalty", "l2") != "l2":
        raise ValueError(
            "Influence needs a twice-differentiable penalty; penalty='l1' is not supported."
        )
    if t is None:
        t = getattr(est, "t", DEFAULT_T)
    X, y, sw = training_inputs(est, X, y, sample_weight)
    classes = est.classes_
    y_idx = encode_labels(classes, y)
    sw, targets = _liblinear_weights(est, y, y_idx, sample_weight, sw)
    fit_intercept = bool(est.fit_intercept)
    scaling = float(est.intercept_scaling) if fit_intercept else 1.0
    coef = np.asarray(est.coef_, dtype=np.float64)
    if fit_intercept:
        intercept = np.asarray(est.intercept_, dtype=np.float64).reshape(-1)
        coef = np.hstack([coef, (intercept / scaling)[:, None]])
    binary_loss = HingeSurrogate(t) if est.loss == "hinge" else SquaredHinge()
    loss = binary_loss if len(classes) == 2 else OneVsRest(binary_loss)
    design = LinearDesign(X, fit_intercept=fit_intercept, intercept_scaling=scaling)

    def featurize(X_new):
        return LinearDesign(check_features(est, X_new), fit_intercept=fit_intercept,
                            intercept_scaling=scaling)

    # liblinear penalizes the intercept column like any other
    penalty = np.full(design.n_params, 1.0 / float(est.C))
    cls = HingeGLMObjective if est.loss == "hinge" else GLMObjective
    objective = cls(loss, design, targets, coef, penalty=penalty, sample_weight=sw,
                    featurize=featurize, encode_target=margin_encoder(classes))
    if est.loss == "hinge":
        # liblinear leaves margin rows at slacks of a few times tol (1.2e-10 seen at
        # tol=1e-10): a tolerance at tol itself misclassifies them about one fit in 20
        objective.margin_tol = max(float(est.tol), 1e-6)
    return objective


class LinearSVC(InfluenceMixin, _sk.LinearSVC):
    """scikit-learn's ``LinearSVC`` with influence functions on its own objective.

    It fits exactly like :class:`sklearn.svm.LinearSVC` (liblinear) and adds
    :meth:`influence`, :meth:`loo_effect`, :meth:`rank_training_points`,
    :meth:`perturbation_influence` and the rest of
    :class:`~skinfluence.InfluenceMixin`.

    The objective is liblinear's: ``0.5 ||w~||^2 + C sum_i C_i loss(y_i w~^T x~_i)``
    with the intercept a penalized column of value ``intercept_scaling``, ``C_i`` the
    sample weight times the class weight, one-vs-rest for several classes.

    With ``loss="hinge"`` the objective has no second derivative, so influence is
    computed with the derivatives of the smooth hinge
    ``t * log(1 + exp((1 - y f) / t))`` at this SVM's weights (Koh & Liang, Section
    4.1), while test losses (``loo_effect(method="newton")``, test losses) are the
    hinge itself.  This predicts leave-one-out retraining well when the SVM is
    reasonably regularized and the training set is not tiny (MNIST 1 vs 7, 5,000 rows,
    ``1 / (C n) = 0.01``: Pearson R about 0.97 at ``t = 0.001``); ``t = 0`` gives the
    hinge's own derivatives, which overestimate effects many-fold.  See the user guide
    section "When can influence on an SVM be trusted?".  ``loss="squared_hinge"``
    (the default) is differentiable and used as it is.

    Parameters
    ----------
    t : float, default=0.001
        Smoothing temperature of influence for ``loss="hinge"`` (ignored for the
        squared hinge).  The other parameters are those of
        :class:`sklearn.svm.LinearSVC`.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import scale
    >>> from skinfluence.svm import LinearSVC
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = scale(X)
    >>> svm = LinearSVC(loss="hinge", C=0.05, tol=1e-10, max_iter=100000).fit(X[:400], y[:400])
    >>> svm.loo_effect(X[400:402], y[400:402]).shape
    (400, 2)
    """

    _parameter_constraints: dict = {
        **_sk.LinearSVC._parameter_constraints,
        "t": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        penalty="l2",
        loss="squared_hinge",
        *,
        dual="auto",
        tol=1e-4,
        C=1.0,
        multi_class="ovr",
        fit_intercept=True,
        intercept_scaling=1,
        class_weight=None,
        verbose=0,
        random_state=None,
        max_iter=1000,
        t=DEFAULT_T,
    ):
        super().__init__(
            penalty=penalty, loss=loss, dual=dual, tol=tol, C=C, multi_class=multi_class,
            fit_intercept=fit_intercept, intercept_scaling=intercept_scaling,
            class_weight=class_weight, verbose=verbose, random_state=random_state,
            max_iter=max_iter,
        )
        self.t = t

    def _influence_objective(self, X, y, sample_weight):
        return linear_svc_objective(self, X, y, sample_weight)



# ---------------------------------------------------------------------------------
# a linear classifier trained on the smooth hinge
# ---------------------------------------------------------------------------------
def smooth_hinge_classifier_objective(est, X, y, sample_weight=None):
    """Objective of a fitted :class:`SmoothHingeClassifier`: the one it minimized."""
    X, y, sw = training_inputs(est, X, y, sample_weight)
    classes = est.classes_
    y_idx = encode_labels(classes, y)
    sw = sw * _class_weights(est, y)[y_idx]
    fit_intercept = bool(est.fit_intercept)
    coef = np.asarray(est.coef_, dtype=np.float64)
    if fit_intercept:
        coef = np.hstack([coef, np.asarray(est.intercept_, dtype=np.float64)[:, None]])

    def featurize(X_new):
        return LinearDesign(check_features(est, X_new), fit_intercept=fit_intercept)

    return GLMObjective(_smooth_loss(est.t, len(classes)), LinearDesign(X, fit_intercept=fit_intercept),
                        margin_targets(y_idx, len(classes)), coef, penalty=1.0 / est.C,
                        sample_weight=sw, featurize=featurize,
                        encode_target=margin_encoder(classes))


def _smooth_loss(t: float, n_classes: int):
    loss = SmoothHinge(t)
    return loss if n_classes == 2 else OneVsRest(loss)


def _class_weights(est, y) -> np.ndarray:
    return compute_class_weight(est.class_weight, classes=est.classes_, y=y)


class _SmoothHingeCore(LinearClassifierMixin, BaseEstimator):
    """Fitting of :class:`SmoothHingeClassifier` (the mixin wraps this ``fit``)."""

    _parameter_constraints: dict = {
        "C": [Interval(Real, 0, None, closed="neither")],
        "t": [Interval(Real, 0, None, closed="neither")],
        "fit_intercept": ["boolean"],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, C=1.0, *, t=0.1, fit_intercept=True, class_weight=None, tol=1e-10,
                 max_iter=1000):
        self.C = C
        self.t = t
        self.fit_intercept = fit_intercept
        self.class_weight = class_weight
        self.tol = tol
        self.max_iter = max_iter

    def fit(self, X, y, sample_weight=None):
        """Fit the model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        self._validate_params()
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=[np.float64, np.float32])
        y_idx = check_classifier_targets(self, y)
        sw = _check_sample_weight(sample_weight, X, dtype=np.float64)
        sw = sw * _class_weights(self, y)[y_idx]
        K = 1 if len(self.classes_) == 2 else len(self.classes_)
        design = LinearDesign(X, fit_intercept=self.fit_intercept)
        n_classes = len(self.classes_)
        coef, self.n_iter_ = fit_linear_objective(
            _smooth_loss(self.t, n_classes), design, margin_targets(y_idx, n_classes), K,
            penalty=1.0 / self.C, sample_weight=sw, tol=self.tol, max_iter=self.max_iter,
            warm_up_losses=[_smooth_loss(t, n_classes)
                            for t in smooth_hinge_schedule(self.t)])
        d = X.shape[1]
        self.coef_ = coef[:, :d]
        self.intercept_ = coef[:, d] if self.fit_intercept else np.zeros(K)
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class SmoothHingeClassifier(InfluenceMixin, _SmoothHingeCore):
    """A linear SVM trained on the smooth hinge, so that its loss and influence agree.

    Minimizes ``C * sum_i s_i SmoothHinge_t(y_i (w^T x_i + b)) + 0.5 ||w||^2`` with
    ``SmoothHinge_t(m) = t * log(1 + exp((1 - m) / t))`` (Koh & Liang, Section 4.1),
    ``s_i`` the sample weight times the class weight and the intercept unpenalized,
    by trust-region Newton-CG on the same objective the influence engine uses.  It
    tends to the hinge-loss SVM as ``t -> 0``.  More than two classes: one-vs-rest,
    one output per class, fitted jointly.

    Parameters
    ----------
    C : float, default=1.0
        Inverse regularization strength.
    t : float, default=0.1
        Smoothing temperature (> 0).  Smaller is closer to the hinge and harder to
        optimize (the curvature near the margin grows like ``1 / t``).
    fit_intercept : bool, default=True
    class_weight : dict, "balanced" or None, default=None
    tol : float, default=1e-10
        Stop when ``||grad J|| / sum(s) < tol``.
    max_iter : int, default=1000
        Newton iterations.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
    intercept_ : ndarray of shape (1,) or (n_classes,)
    n_iter_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Names of the features seen in fit, when they were all strings.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import scale
    >>> from skinfluence.svm import SmoothHingeClassifier
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = scale(X)
    >>> clf = SmoothHingeClassifier(C=0.1, t=0.1).fit(X[:400], y[:400])
    >>> clf.influence(X[400:402], y[400:402]).shape
    (400, 2)
    """

    def _influence_objective(self, X, y, sample_weight):
        return smooth_hinge_classifier_objective(self, X, y, sample_weight)


register_objective(_sk.LinearSVC, linear_svc_objective)
register_objective(SmoothHingeClassifier, smooth_hinge_classifier_objective)
