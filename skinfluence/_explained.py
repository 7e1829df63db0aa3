"""The influence engine behind any fitted model the workflows accept.

The attack, the label-fixing simulation and the Displays take what a user has: an
estimator carrying :class:`~skinfluence.InfluenceMixin`, a pipeline ending with one, or a
plain scikit-learn estimator that :func:`skinfluence.explain` knows.  This module finds
the one engine that explains it, so that none of them repeats the dispatch.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from sklearn.base import clone

from ._adapters import explain
from ._influence import Influence

__all__ = ["influence_engine", "own_losses", "refit_like"]


def _is_pipeline(model) -> bool:
    return hasattr(model, "steps") and hasattr(model, "_final_estimator")


def _preprocessing(model) -> Callable:
    """The fitted steps before a pipeline's final one, as one function of raw rows."""
    if not _is_pipeline(model):
        return lambda X: X

    def transform(X):
        for _, _, step in model._iter(with_final=False):
            X = step.transform(X)
        return X

    return transform


def influence_engine(model, X_train, y_train, sample_weight=None,
                     **options) -> tuple[Influence, Callable]:
    """The engine explaining a fitted model, and how raw rows reach it.

    Parameters
    ----------
    model : fitted estimator or pipeline
        Fitted on ``(X_train, y_train)``.
    X_train, y_train : the training data it was fitted on (used only when the model
        does not keep it itself, i.e. for plain scikit-learn estimators).
    sample_weight : array-like, default=None
    **options : engine options

    Returns
    -------
    engine : Influence
    transform : callable
        Maps raw rows to the engine's inputs (the identity unless ``model`` is a
        pipeline).
    """
    transform = _preprocessing(model)
    step = model._final_estimator if _is_pipeline(model) else model
    if hasattr(step, "influence_explainer"):
        return step.influence_explainer(**options), transform
    return explain(step, transform(X_train), y_train, sample_weight, **options), transform


def own_losses(model, X, y, X_train=None, y_train=None) -> np.ndarray:
    """Per-row loss of ``(X, y)`` under the loss the model minimized (log loss for
    logistic regression), shape (n_rows,)."""
    engine, transform = influence_engine(model, X_train, y_train)
    return engine.test_loss(transform(X), y)


def refit_like(model, X, y, *, warm_start: bool = True):
    """A clone of a fitted model trained on new data, started from its fit when it can.

    Edited data (a few attacked rows, a few fixed labels) moves the optimum a little, so
    starting from the previous parameters saves most of the iterations.  The clone's own
    ``warm_start`` setting is restored after fitting.
    """
    refit = clone(model)
    params = refit.get_params()
    use_warm = warm_start and "warm_start" in params and not _is_pipeline(model)
    if use_warm:
        refit.set_params(warm_start=True)
        for name in ("coef_", "intercept_"):
            if hasattr(model, name):
                setattr(refit, name, np.array(getattr(model, name), copy=True))
    refit.fit(X, y)
    if use_warm:
        refit.set_params(warm_start=params["warm_start"])
    return refit
