"""Scorers for model selection built on influence: ``scoring=`` in any scikit-learn search.

Both scorers describe the fitted model and its *training* rows; the held-out rows that
scikit-learn passes to a scorer are not used.  Each works with any estimator carrying
:class:`~skinfluence.InfluenceMixin`, and with a pipeline whose final step carries it.

``loo_scorer``
    Minus the approximate leave-one-out loss of the training rows: each row's loss at
    its one-step Newton leave-one-out prediction
    (:meth:`~skinfluence.Influence.loo_raw_predictions`), averaged without weights.
    For logistic regression that is the log loss that leave-one-out cross-validation
    with ``scoring="neg_log_loss"`` would report, from one fit.
``self_influence_scorer``
    Minus the largest predicted increase of a training row's own loss when that row is
    removed (:meth:`~skinfluence.Influence.self_loo_effect`, ``= -I_up,loss(z_i, z_i) /
    n``): how much the fitted model leans on any single row.  A model that memorizes
    one row scores low.  Heavier regularization always scores higher, so use it beside a
    loss (multi-metric scoring with ``refit="neg_log_loss"``), not alone.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "loo_scorer",
    "self_influence_scorer",
    "make_loo_scorer",
    "make_self_influence_scorer",
    "approximate_loo_losses",
]


def _influence_step(estimator):
    """The estimator that carries the influence methods (a pipeline's final step)."""
    step = estimator
    while hasattr(step, "steps") and hasattr(step, "_final_estimator"):
        step = step._final_estimator
    if not hasattr(step, "influence_explainer"):
        raise TypeError(
            f"{type(step).__name__} has no influence methods: influence scorers need an "
            "estimator carrying skinfluence.InfluenceMixin (e.g. "
            "skinfluence.linear_model.LogisticRegression), alone or last in a pipeline."
        )
    return step


def approximate_loo_losses(estimator, **options) -> np.ndarray:
    """Each training row's loss at its one-step Newton leave-one-out prediction.

    Parameters
    ----------
    estimator : fitted estimator
        Carrying :class:`~skinfluence.InfluenceMixin`, or a pipeline ending with one.
    **options
        Engine options (``solver``, ``damping``, ...).

    Returns
    -------
    ndarray of shape (n_train,)
        The loss of the estimator's objective (log loss for logistic regression, half
        the squared error for ridge) of row ``i`` under the model refitted without row
        ``i``, to one exact Newton step.
    """
    engine = _influence_step(estimator).influence_explainer(**options)
    objective = engine.objective
    return objective.loss.value(objective.y, engine.loo_raw_predictions())


class _InfluenceScorer:
    """Callable ``scorer(estimator, X, y)``; X and y (the held-out fold) are unused."""

    _name = "influence_scorer"

    def __init__(self, **options):
        self.options = options

    def _score(self, step) -> float:
        raise NotImplementedError

    def __call__(self, estimator, X=None, y=None, **kwargs) -> float:
        return float(self._score(_influence_step(estimator)))

    def _args(self) -> dict:
        return dict(self.options)

    def _accept_sample_weight(self) -> bool:
        # asked by scikit-learn's multi-metric scoring when sample_weight is routed:
        # the score is a property of the fit, not of weighted held-out rows
        return False

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._args().items())
        return f"{self._name}({args})"


class _LOOScorer(_InfluenceScorer):
    _name = "make_loo_scorer"

    def _score(self, step) -> float:
        return -np.mean(approximate_loo_losses(step, **self.options))


class _SelfInfluenceScorer(_InfluenceScorer):
    _name = "make_self_influence_scorer"

    def __init__(self, quantile: float = 1.0, method: str = "influence", **options):
        if not 0.0 <= quantile <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {quantile!r}.")
        super().__init__(**options)
        self.quantile = quantile
        self.method = method

    def _args(self) -> dict:
        return dict(quantile=self.quantile, method=self.method, **self.options)

    def _score(self, step) -> float:
        increase = step.influence_explainer(**self.options).self_loo_effect(method=self.method)
        return -np.quantile(increase, self.quantile)


def make_loo_scorer(**options) -> _LOOScorer:
    """A scorer returning minus the approximate leave-one-out loss of the training rows.

    Parameters
    ----------
    **options
        Engine options (``solver``, ``damping``, ...).

    Returns
    -------
    callable
        ``scorer(estimator, X, y) = -mean(approximate_loo_losses(estimator))``; greater
        is better.  ``X`` and ``y`` are not used.
    """
    return _LOOScorer(**options)


def make_self_influence_scorer(quantile: float = 1.0, method: str = "influence",
                               **options) -> _SelfInfluenceScorer:
    """A scorer returning minus a high quantile of the rows' self-influence effect.

    Parameters
    ----------
    quantile : float, default=1.0
        Which quantile of ``self_loo_effect`` over the training rows: 1.0 is the
        largest (the single row the model leans on most), 0.99 a more stable summary.
    method : {"influence", "newton"}, default="influence"
        First order (``-self_influence / n``) or one Newton step (more accurate for
        high-leverage rows).
    **options
        Engine options.

    Returns
    -------
    callable
        ``scorer(estimator, X, y) = -quantile_i(self_loo_effect_i)``; greater is better.
    """
    return _SelfInfluenceScorer(quantile=quantile, method=method, **options)


#: minus the approximate (one-step Newton) leave-one-out loss of the training rows
loo_scorer = make_loo_scorer()
#: minus the largest predicted own-loss increase of a training row on its removal
self_influence_scorer = make_self_influence_scorer()
