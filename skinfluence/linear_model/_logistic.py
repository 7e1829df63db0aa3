"""Logistic regression with influence functions."""

from __future__ import annotations

from sklearn import linear_model as _sk

from .._adapters import logistic_regression_objective
from ..mixin import InfluenceMixin

__all__ = ["LogisticRegression"]


class LogisticRegression(InfluenceMixin, _sk.LogisticRegression):
    """scikit-learn's ``LogisticRegression`` with Koh & Liang's influence functions.

    It fits exactly like :class:`sklearn.linear_model.LogisticRegression` (same
    parameters, same solvers, same results) and adds :meth:`influence`,
    :meth:`loo_effect`, :meth:`rank_training_points`, :meth:`perturbation_influence`,
    :meth:`edit_effect`, :meth:`group_effect` and friends (see
    :class:`~skinfluence.InfluenceMixin`).

    Influence is computed on the objective scikit-learn minimized,
    ``C * sum_i s_i l_i + 0.5 ||w||^2`` with ``s_i = sample_weight * class_weight`` and
    the intercept unpenalized (penalized as a column of value ``intercept_scaling``
    with ``solver="liblinear"``).  Binary models have one coefficient row and the
    labels ``classes_[0] -> 0``, ``classes_[1] -> 1``; three classes or more use the
    multinomial loss, whose Hessian is singular along "same shift of every
    intercept": that direction is removed exactly.  L1 and elastic-net fits use the
    active set (binary only).

    Influence assumes the parameters minimize the objective: fit with a small ``tol``
    (e.g. ``1e-8``) when you compare with leave-one-out retraining; an unconverged fit
    gives a :class:`~skinfluence.exceptions.NotConvergedWarning`.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import scale
    >>> from skinfluence.linear_model import LogisticRegression
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = scale(X)
    >>> clf = LogisticRegression(C=0.1, tol=1e-10).fit(X[:400], y[:400])
    >>> clf.influence(X[400:403], y[400:403]).shape
    (400, 3)
    >>> top = clf.rank_training_points(X[400:401], y[400:401], kind="harmful", top_k=5)
    >>> suspects = clf.rank_training_points(kind="self", top_k=10)
    """

    def _influence_objective(self, X, y, sample_weight):
        return logistic_regression_objective(self, X, y, sample_weight)
