"""Kernel classifiers fitted on the objective their influence is computed on.

Public in :mod:`skinfluence.kernel_model` (and :mod:`skinfluence.svm` for the SVM).

scikit-learn has no kernel logistic regression and no smooth-hinge kernel SVM; these
minimize

.. math::

    C \\sum_i s_i \\, \\ell(y_i, f(x_i) + b) + \\tfrac12 \\|f\\|_{\\mathcal H}^2

over the RKHS of a kernel (any of :func:`sklearn.metrics.pairwise.pairwise_kernels`,
a callable or ``"precomputed"``), the intercept unpenalized, ``s_i`` the sample
weight times the class weight.  They are fitted as linear models on a kernel map
(:mod:`skinfluence._kernel`): the whitened empirical map (``kernel_map="exact"``,
an ``O(n^3)`` eigendecomposition) or a Nystroem map of ``n_components`` landmarks
(``"nystroem"``, ``O(n m^2)``, an approximation of the RKHS model that is itself an
exact linear model on its features), by trust-region Newton on the same objective
the influence engine differentiates.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ._adapters import check_features, encode_labels, register_objective, training_inputs
from ._glm_fit import fit_linear_objective, smooth_hinge_schedule
from ._kernel import KernelObjective, make_kernel_map
from ._kernel_builders import resolve_gamma, svc_kernel_spec
from .losses import BinaryLogistic, SmoothHinge, SoftmaxCrossEntropy
from .mixin import InfluenceMixin
from .objective import LinearDesign
from ._margin import OneVsRest, check_classifier_targets, margin_targets

__all__ = ["KernelLogisticRegression", "KernelSmoothHingeClassifier", "kernel_classifier_objective"]


class _BaseKernelClassifier(ClassifierMixin, BaseEstimator):
    """Shared fit/predict of the kernel classifiers (subclasses choose the loss).

    The public classes put :class:`~skinfluence.InfluenceMixin` first, so that its
    ``fit`` wraps this one and keeps the training data.
    """

    _parameter_constraints: dict = {
        "C": [Interval(Real, 0, None, closed="neither")],
        "kernel": [StrOptions({"linear", "poly", "rbf", "sigmoid", "precomputed"}), callable],
        "degree": [Interval(Integral, 0, None, closed="left")],
        "gamma": [StrOptions({"scale", "auto"}), Interval(Real, 0, None, closed="neither")],
        "coef0": [Real],
        "kernel_map": [StrOptions({"exact", "nystroem"})],
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "eigenvalue_cutoff": [Interval(Real, 0, 1, closed="left")],
        "fit_intercept": ["boolean"],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    # ------------------------------------------------------------------ subclass hooks
    def _loss(self, n_classes: int):
        raise NotImplementedError

    def _targets(self, y_idx: np.ndarray, n_classes: int):
        raise NotImplementedError

    def _warm_up_losses(self, n_classes: int) -> list:
        return []

    # ------------------------------------------------------------------ fitting
    def _kernel_spec(self):
        return svc_kernel_spec(self.kernel, self._gamma, self.degree, self.coef0)

    def fit(self, X, y, sample_weight=None):
        """Fit the model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training inputs, or the (n_samples, n_samples) kernel matrix when
            ``kernel="precomputed"``.
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        self._validate_params()
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=np.float64)
        if self.kernel == "precomputed" and X.shape[0] != X.shape[1]:
            raise ValueError(
                f"With kernel='precomputed', X must be the square training kernel matrix, "
                f"got shape {X.shape}."
            )
        if self.kernel == "precomputed" and self.kernel_map == "nystroem":
            raise ValueError("kernel_map='nystroem' needs a named kernel, not 'precomputed'.")
        y_idx = check_classifier_targets(self, y)
        n_classes = len(self.classes_)
        sw = _check_sample_weight(sample_weight, X, dtype=np.float64)
        self._gamma = (0.0 if self.kernel == "precomputed"
                       else resolve_gamma(self.gamma, X, sample_weight=sw))
        sw = sw * compute_class_weight(self.class_weight, classes=self.classes_, y=y)[y_idx]
        self.kernel_map_ = make_kernel_map(
            self._kernel_spec(), self.kernel_map, n_components=self.n_components,
            eigenvalue_cutoff=self.eigenvalue_cutoff,
            random_state=self.random_state).fit(X)
        loss = self._loss(n_classes)
        K = loss_outputs(loss, n_classes)
        design = LinearDesign(self.kernel_map_.train_features_, fit_intercept=self.fit_intercept)
        coef, self.n_iter_ = fit_linear_objective(
            loss, design, self._targets(y_idx, n_classes), K, penalty=1.0 / self.C,
            sample_weight=sw, tol=self.tol, max_iter=self.max_iter,
            warm_up_losses=self._warm_up_losses(n_classes))
        r = design.n_features
        self.map_coef_ = coef[:, :r]
        self.intercept_ = coef[:, r] if self.fit_intercept else np.zeros(K)
        if loss.shift_invariant:
            # the softmax ignores a common shift of the (unpenalized) intercepts:
            # report the centered one, as a unique answer
            self.intercept_ = self.intercept_ - self.intercept_.mean()
        self.dual_coef_ = self.kernel_map_.dual_from_coef(self.map_coef_.T)
        return self

    def decision_function(self, X) -> np.ndarray:
        """Raw predictions ``f(x) + b``: shape (n,) for two classes, else (n, n_classes)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, accept_sparse="csr", dtype=np.float64)
        kmap = self.kernel_map_
        K_new = X if self.kernel == "precomputed" else kmap.kernel(X, kmap.basis_)
        raw = np.asarray(K_new @ self.dual_coef_) + self.intercept_
        return raw[:, 0] if raw.shape[1] == 1 else raw

    def predict(self, X) -> np.ndarray:
        """Predicted class labels, shape (n,)."""
        raw = self.decision_function(X)
        idx = (raw > 0).astype(np.intp) if raw.ndim == 1 else np.argmax(raw, axis=1)
        return self.classes_[idx]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = self.kernel != "precomputed"
        tags.input_tags.pairwise = self.kernel == "precomputed"
        return tags


def loss_outputs(loss, n_classes: int) -> int:
    """Number of raw outputs of a classifier loss."""
    return 1 if n_classes == 2 else n_classes


def kernel_classifier_objective(est, X, y, sample_weight=None) -> KernelObjective:
    """Objective of a fitted :class:`KernelLogisticRegression` or
    :class:`KernelSmoothHingeClassifier`, on the kernel map it was fitted on."""
    X, y, sw = training_inputs(est, X, y, sample_weight)
    classes = est.classes_
    y_idx = encode_labels(classes, y)
    sw = sw * compute_class_weight(est.class_weight, classes=classes, y=y)[y_idx]
    kmap = est.kernel_map_
    if kmap.train_features_.shape[0] != X.shape[0]:
        raise ValueError(
            f"X has {X.shape[0]} rows but the model was fitted on "
            f"{kmap.train_features_.shape[0]}: pass the training data."
        )
    coef = est.map_coef_
    if est.fit_intercept:
        coef = np.hstack([coef, est.intercept_[:, None]])

    def encode(y_new):
        return est._targets(encode_labels(classes, y_new), len(classes))

    return KernelObjective(
        est._loss(len(classes)), kmap, X, est._targets(y_idx, len(classes)), coef,
        fit_intercept=est.fit_intercept, penalty=1.0 / est.C, sample_weight=sw,
        check_inputs=lambda X_new: check_features(est, X_new), encode_target=encode)


_KERNEL_DOC = """
    Parameters
    ----------
    C : float, default=1.0
        Inverse regularization strength: the objective is
        ``C * sum_i s_i loss_i + 0.5 ||f||^2``.
    kernel : {"rbf", "linear", "poly", "sigmoid", "precomputed"} or callable, default="rbf"
        A callable is called as ``kernel(A, B)`` and returns the kernel matrix (like
        :class:`sklearn.svm.SVC`).  ``"sigmoid"`` must be positive semi-definite on
        the data.
    degree : int, default=3
    gamma : {"scale", "auto"} or float, default="scale"
        As in :class:`sklearn.svm.SVC` (``"scale"`` uses the sample-weighted
        variance of ``X``).  Perturbation influence holds the fitted value fixed.
    coef0 : float, default=0.0
    kernel_map : {"exact", "nystroem"}, default="exact"
        ``"exact"``: eigendecomposition of the training kernel matrix (``O(n^3)``
        time, ``O(n^2)`` memory).  ``"nystroem"``: the span of ``n_components``
        random training rows (:class:`sklearn.kernel_approximation.Nystroem`).
    n_components : int, default=1000
        Landmarks of the Nystroem map.
    eigenvalue_cutoff : float, default=1e-12
        Relative cutoff of the exact map's eigenvalues.
    fit_intercept : bool, default=True
        Unpenalized intercept.
    class_weight : dict, "balanced" or None, default=None
    tol : float, default=1e-10
        Stop when ``||grad J|| / sum(s) < tol``.
    max_iter : int, default=1000
        Newton iterations.
    random_state : int, RandomState instance or None, default=None
        Landmarks of the Nystroem map.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    kernel_map_ : ExactKernelMap or NystroemKernelMap
        The fitted kernel map (its ``basis_`` is the training inputs or the landmarks).
    map_coef_ : ndarray of shape (n_outputs, n_map_features)
        Coordinates of ``f`` on the whitened map.
    dual_coef_ : ndarray of shape (n_basis, n_outputs)
        ``f = sum_j dual_coef_[j] k(basis_j, .)``.
    intercept_ : ndarray of shape (n_outputs,)
    n_iter_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Names of the features seen in fit, when they were all strings.
"""


class KernelLogisticRegression(InfluenceMixin, _BaseKernelClassifier):
    __doc__ = """Kernel logistic regression, with influence functions.

    Minimizes ``C * sum_i s_i logloss(y_i, f(x_i) + b) + 0.5 ||f||_H^2`` (binary; the
    multinomial loss for three classes or more).  The log loss is smooth, so
    influence is the exact first-order effect of removing a row; on digits its
    leave-one-out predictions correlate with retraining at R > 0.95.
    """ + _KERNEL_DOC + """
    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import scale
    >>> from skinfluence.kernel_model import KernelLogisticRegression
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = scale(X)
    >>> clf = KernelLogisticRegression(C=1.0).fit(X[:300], y[:300])
    >>> clf.influence(X[300:302], y[300:302]).shape
    (300, 2)
    """

    def __init__(self, C=1.0, *, kernel="rbf", degree=3, gamma="scale", coef0=0.0,
                 kernel_map="exact", n_components=1000, eigenvalue_cutoff=1e-12,
                 fit_intercept=True, class_weight=None, tol=1e-10, max_iter=1000,
                 random_state=None):
        self.C = C
        self.kernel = kernel
        self.degree = degree
        self.gamma = gamma
        self.coef0 = coef0
        self.kernel_map = kernel_map
        self.n_components = n_components
        self.eigenvalue_cutoff = eigenvalue_cutoff
        self.fit_intercept = fit_intercept
        self.class_weight = class_weight
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state

    def _influence_objective(self, X, y, sample_weight):
        return kernel_classifier_objective(self, X, y, sample_weight)

    def _loss(self, n_classes):
        return BinaryLogistic() if n_classes == 2 else SoftmaxCrossEntropy()

    def _targets(self, y_idx, n_classes):
        return (y_idx == 1).astype(np.float64) if n_classes == 2 else y_idx

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n, n_classes)."""
        raw = self.decision_function(X)
        if raw.ndim == 1:
            p = expit(raw)
            return np.column_stack([1.0 - p, p])
        return softmax(raw, axis=1)

    def predict_log_proba(self, X) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))


class KernelSmoothHingeClassifier(InfluenceMixin, _BaseKernelClassifier):
    __doc__ = """A kernel SVM trained on the smooth hinge, with influence functions.

    Minimizes ``C * sum_i s_i SmoothHinge_t(y_i (f(x_i) + b)) + 0.5 ||f||_H^2`` with
    ``SmoothHinge_t(m) = t log(1 + exp((1 - m) / t))`` (one-vs-rest outputs for three
    classes or more): the kernel SVM tends to :class:`sklearn.svm.SVC` as ``t -> 0``,
    and its loss is the one influence differentiates.
    """ + _KERNEL_DOC.replace(
        "    kernel : {", "    t : float, default=0.1\n        Smoothing temperature (> 0).\n"
                           "    kernel : {") + """
    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import scale
    >>> from skinfluence.svm import KernelSmoothHingeClassifier
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = scale(X)
    >>> clf = KernelSmoothHingeClassifier(C=1.0, t=0.1).fit(X[:300], y[:300])
    >>> clf.loo_effect(X[300:302], y[300:302], method="newton").shape
    (300, 2)
    """

    _parameter_constraints: dict = {
        **_BaseKernelClassifier._parameter_constraints,
        "t": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, C=1.0, *, t=0.1, kernel="rbf", degree=3, gamma="scale", coef0=0.0,
                 kernel_map="exact", n_components=1000, eigenvalue_cutoff=1e-12,
                 fit_intercept=True, class_weight=None, tol=1e-10, max_iter=1000,
                 random_state=None):
        self.C = C
        self.t = t
        self.kernel = kernel
        self.degree = degree
        self.gamma = gamma
        self.coef0 = coef0
        self.kernel_map = kernel_map
        self.n_components = n_components
        self.eigenvalue_cutoff = eigenvalue_cutoff
        self.fit_intercept = fit_intercept
        self.class_weight = class_weight
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state

    def _influence_objective(self, X, y, sample_weight):
        return kernel_classifier_objective(self, X, y, sample_weight)

    def _loss(self, n_classes):
        loss = SmoothHinge(self.t)
        return loss if n_classes == 2 else OneVsRest(loss)

    def _targets(self, y_idx, n_classes):
        return margin_targets(y_idx, n_classes)

    def _warm_up_losses(self, n_classes):
        losses = [SmoothHinge(t) for t in smooth_hinge_schedule(self.t)]
        return losses if n_classes == 2 else [OneVsRest(loss) for loss in losses]


register_objective(KernelLogisticRegression, kernel_classifier_objective)
register_objective(KernelSmoothHingeClassifier, kernel_classifier_objective)
