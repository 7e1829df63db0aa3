"""libsvm's kernel ``SVC`` with influence on its RKHS objective."""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn import svm as _sk
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from .._adapters import check_features, encode_labels, register_objective, training_inputs
from .._kernel import make_kernel_map
from .._kernel_builders import dual_over_rows, svc_kernel_spec
from ..mixin import InfluenceMixin
from .._margin import HingeSurrogate, margin_encoder, margin_targets
from ._linear import DEFAULT_T
from ._objective import HingeKernelObjective

__all__ = ["SVC", "svc_objective"]


def svc_objective(est, X, y, sample_weight=None, *, t: float | None = None,
                  kernel_map="exact", n_components: int = 1000,
                  eigenvalue_cutoff: float = 1e-12, random_state=0):
    """Objective of a fitted binary ``sklearn.svm.SVC`` (libsvm).

    libsvm's primal is ``0.5 ||f||^2 + C sum_i C_i hinge(y_i (f(x_i) + b))`` over the
    RKHS with ``C_i = sample_weight_i * class_weight_[y_i]`` and the intercept ``b``
    unpenalized; with ``f = sum_j beta_j k(x_j, .)`` (``beta`` is ``dual_coef_`` on
    ``support_``) the penalty is ``0.5 beta^T K beta``.  Divided by ``C``, it is a
    linear objective on the whitened kernel map (:mod:`skinfluence._kernel`) with
    penalty ``1/C``.  As for :class:`~skinfluence.svm.LinearSVC`, influence uses the
    smooth hinge's derivatives at ``t`` and test losses are the hinge; libsvm's own
    dual variables certify stationarity.

    Parameters
    ----------
    est : fitted sklearn.svm.SVC with two classes
    X, y, sample_weight : the training data (``X`` is the Gram matrix when
        ``kernel="precomputed"``)
    t : float, default=None
        ``est.t`` if the estimator has one, else 0.001.
    kernel_map : {"exact", "nystroem"}, default="exact"
        ``"exact"``: eigendecomposition of the n x n kernel matrix (``O(n^3)``).
        ``"nystroem"``: the span of ``n_components`` random training rows; the
        Hessian and gradients are projected on it while every row's raw prediction
        (so its curvature and residual) stays the SVM's exact one.
    n_components : int, default=1000
    eigenvalue_cutoff : float, default=1e-12
    random_state : int, RandomState instance or None, default=0
        Landmarks of the Nystroem map.
    """
    check_is_fitted(est)
    if len(est.classes_) != 2:
        raise ValueError(
            f"Influence on SVC is implemented for two classes; this one has "
            f"{len(est.classes_)} (libsvm fits one-vs-one problems on subsets of the "
            "rows). Use KernelSmoothHingeClassifier (one-vs-rest) for several classes."
        )
    if t is None:
        t = getattr(est, "t", DEFAULT_T)
    X, y, sw = training_inputs(est, X, y, sample_weight)
    y_idx = encode_labels(est.classes_, y)
    sw = sw * np.asarray(est.class_weight_, dtype=np.float64)[y_idx]
    spec = svc_kernel_spec(est.kernel, est._gamma, est.degree, est.coef0)
    kmap = make_kernel_map(spec, kernel_map, n_components=n_components,
                           eigenvalue_cutoff=eigenvalue_cutoff,
                           random_state=random_state).fit(X)
    dual = dual_over_rows(X.shape[0], est.support_, est.dual_coef_)
    coef = np.hstack([kmap.coef_from_dual(dual).T, np.asarray(est.intercept_)[:, None]])
    exact_raw = None
    if not kmap.basis_is_training:
        def exact_raw(inputs):
            return est.decision_function(inputs)[:, None]

    C = float(est.C)
    objective = HingeKernelObjective(
        HingeSurrogate(t), kmap, X, margin_targets(y_idx, 2), coef, fit_intercept=True,
        penalty=1.0 / C, sample_weight=sw, exact_raw=exact_raw,
        check_inputs=lambda X_new: check_features(est, X_new),
        encode_target=margin_encoder(est.classes_))
    # libsvm's multipliers: beta_i = C * C_i * a_i * y_i with a_i in [0, 1]
    targets = margin_targets(y_idx, 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        multipliers = np.where(sw > 0, dual[:, 0] * targets / (C * sw), 0.0)
    objective.multipliers = multipliers[:, None]
    # libsvm caches kernel values in single precision: margins are exact to ~1e-6
    objective.margin_tol = max(float(est.tol), 1e-5)
    return objective


class SVC(InfluenceMixin, _sk.SVC):
    """scikit-learn's kernel ``SVC`` with influence functions on its own objective.

    It fits exactly like :class:`sklearn.svm.SVC` (libsvm).  Influence (binary
    problems) is computed on libsvm's primal, ``0.5 ||f||^2 + C sum_i C_i hinge_i``
    with the intercept unpenalized, as a linear model on the whitened empirical kernel
    map; the hinge's derivatives are replaced by those of the smooth hinge at
    temperature ``t`` (Koh & Liang, Section 4.1) and test losses stay the hinge.

    Any kernel works for removal/reweighting influence (``"rbf"``, ``"poly"``,
    ``"linear"``, ``"sigmoid"`` if positive semi-definite on the data, callables,
    ``"precomputed"``); :meth:`perturbation_influence` needs the kernel's input
    gradient (``"linear"``, ``"poly"``, ``"rbf"``, ``"sigmoid"``).  The exact map costs
    an ``O(n^3)`` eigendecomposition, once per fit; for large ``n`` build the objective
    with :func:`svc_objective` and ``kernel_map="nystroem"``.

    When can it be trusted?  Leave-one-out predictions are good for rows whose
    removal moves the margin smoothly (a regularized SVM, test points with moderate
    margin): on digits 3 vs 8 with ``t = 0.001`` the 40 most influential rows of a
    low-margin test point give Pearson R above 0.9 against retraining, while the
    hinge's own derivatives (``t = 0``) overestimate by one to two orders of
    magnitude.  See the user guide, "When can influence on an SVM be trusted?".

    Parameters
    ----------
    t : float, default=0.001
        Smoothing temperature of influence.  The other parameters are those of
        :class:`sklearn.svm.SVC`.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import scale
    >>> from skinfluence.svm import SVC
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = scale(X)
    >>> svm = SVC(C=1.0, tol=1e-8).fit(X[:300], y[:300])
    >>> svm.loo_effect(X[300:302], y[300:302]).shape
    (300, 2)
    """

    _parameter_constraints: dict = {
        **_sk.SVC._parameter_constraints,
        "t": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        *,
        C=1.0,
        kernel="rbf",
        degree=3,
        gamma="scale",
        coef0=0.0,
        shrinking=True,
        probability="deprecated",
        tol=1e-3,
        cache_size=200,
        class_weight=None,
        verbose=False,
        max_iter=-1,
        decision_function_shape="ovr",
        break_ties=False,
        random_state=None,
        t=DEFAULT_T,
    ):
        super().__init__(
            C=C, kernel=kernel, degree=degree, gamma=gamma, coef0=coef0,
            shrinking=shrinking, probability=probability, tol=tol, cache_size=cache_size,
            class_weight=class_weight, verbose=verbose, max_iter=max_iter,
            decision_function_shape=decision_function_shape, break_ties=break_ties,
            random_state=random_state,
        )
        self.t = t

    def _influence_objective(self, X, y, sample_weight):
        return svc_objective(self, X, y, sample_weight)



register_objective(_sk.SVC, svc_objective)
