"""Ground truth: exact leave-one-out (and leave-group-out) retraining.

Use it to check influence on your own data, the way the tests do: pick the rows
influence ranks highest, retrain without each, and compare the actual change in test
loss with :meth:`~skinfluence.Influence.loo_effect`.
"""

from __future__ import annotations

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.utils import Bunch, _safe_indexing
from sklearn.utils.validation import check_is_fitted

from ._adapters import explain

__all__ = ["loo_retrain", "pearson_r"]


def _refit_without(estimator, X, y, sample_weight, rows, refit_params, warm_start):
    keep = np.ones(_num_rows(X), dtype=bool)
    keep[np.asarray(rows, dtype=np.intp)] = False
    X_keep, y_keep = _safe_indexing(X, keep), _safe_indexing(y, keep)
    sw_keep = None if sample_weight is None else np.asarray(sample_weight)[keep]
    refit = clone(estimator).set_params(**refit_params)
    if warm_start and "warm_start" in refit.get_params():
        refit.set_params(warm_start=True)
        # start from the full fit: LOO moves the parameters by O(1/n)
        for name in ("coef_", "intercept_"):
            if hasattr(estimator, name):
                setattr(refit, name, np.array(getattr(estimator, name), copy=True))
    if sw_keep is None:
        refit.fit(X_keep, y_keep)
    else:
        refit.fit(X_keep, y_keep, sample_weight=sw_keep)
    return refit, X_keep, y_keep, sw_keep


def _coef(estimator) -> np.ndarray | None:
    """``coef_`` as a dense array; None for models without one (kernel models)."""
    try:
        coef = estimator.coef_
    except AttributeError:
        return None
    return np.asarray(coef.toarray() if hasattr(coef, "toarray") else coef, dtype=np.float64)


def _num_rows(X) -> int:
    return X.shape[0] if hasattr(X, "shape") else len(X)


def _retrain_one(estimator, X, y, sample_weight, rows, X_test, y_test, refit_params,
                 warm_start, base_test_loss, base_own_loss, explain_options):
    refit, X_keep, y_keep, sw_keep = _refit_without(
        estimator, X, y, sample_weight, rows, refit_params, warm_start)
    engine = explain(refit, X_keep, y_keep, sw_keep, **explain_options)
    X_rows = _safe_indexing(X, np.asarray(rows))
    y_rows = _safe_indexing(y, np.asarray(rows))
    out = {
        "own": engine.test_loss(X_rows, y_rows) - base_own_loss,
        "coef": _coef(refit),
        "intercept": np.asarray(getattr(refit, "intercept_", 0.0), dtype=np.float64),
    }
    if X_test is not None:
        out["test"] = engine.test_loss(X_test, y_test) - base_test_loss
    return out


def loo_retrain(estimator, X, y, train_indices, X_test=None, y_test=None, *,
                sample_weight=None, groups: bool = False, refit_params=None,
                warm_start: bool = True, n_jobs=None) -> Bunch:
    """Remove training rows one at a time (or a group at a time), refit, and measure.

    Parameters
    ----------
    estimator : fitted estimator
        The model to validate, fitted on ``(X, y, sample_weight)``.
    X, y : training data
    train_indices : array-like of int, or list of arrays of int with ``groups=True``
        Rows to remove, one refit each (or one refit per group).
    X_test, y_test : test data, default=None
        Where to measure the change in loss.
    sample_weight : array-like, default=None
    groups : bool, default=False
        Treat ``train_indices`` as a list of groups removed together.
    refit_params : dict, default=None
        Parameters set on each clone before refitting, e.g. ``{"tol": 1e-12}``:
        leave-one-out moves the fit by O(1/n), so the refit must be tight.
    warm_start : bool, default=True
        Start each refit from the full fit when the estimator supports it.
    n_jobs : int, default=None
        Refits run in parallel (joblib).

    Returns
    -------
    Bunch with
        ``loss_change`` : (n_removed, n_test) actual change of each test loss (if test
        data was given);
        ``own_loss_change`` : list of arrays, the removed rows' own loss change;
        ``coef_change``, ``intercept_change`` : parameter changes, shapes
        (n_removed,) + ``coef_.shape`` / ``intercept_.shape`` (``coef_change`` is
        None for models without ``coef_``, such as kernel models).
    """
    check_is_fitted(estimator)
    refit_params = dict(refit_params or {})
    sets = [np.atleast_1d(np.asarray(g, dtype=np.intp)) for g in train_indices] if groups \
        else [np.array([i], dtype=np.intp) for i in np.asarray(train_indices).ravel()]
    base = explain(estimator, X, y, sample_weight, convergence_tol=np.inf)
    base_test = None if X_test is None else base.test_loss(X_test, y_test)
    results = Parallel(n_jobs=n_jobs)(
        delayed(_retrain_one)(
            estimator, X, y, sample_weight, rows, X_test, y_test, refit_params, warm_start,
            base_test,
            base.test_loss(_safe_indexing(X, rows), _safe_indexing(y, rows)),
            {"convergence_tol": np.inf},
        )
        for rows in sets
    )
    coef = _coef(estimator)
    intercept = np.asarray(getattr(estimator, "intercept_", 0.0), dtype=np.float64)
    out = Bunch(
        own_loss_change=[r["own"] for r in results],
        coef_change=None if coef is None else np.array([r["coef"] - coef for r in results]),
        intercept_change=np.array([r["intercept"] - intercept for r in results]),
    )
    if X_test is not None:
        out.loss_change = np.array([r["test"] for r in results]).reshape(len(sets), -1)
    return out


def pearson_r(predicted, actual) -> float:
    """Pearson correlation of predicted vs actual changes (the paper's Fig. 2 metric)."""
    predicted = np.asarray(predicted, dtype=np.float64).ravel()
    actual = np.asarray(actual, dtype=np.float64).ravel()
    return float(np.corrcoef(predicted, actual)[0, 1])
