"""Ground truth: exact leave-one-out (and leave-group-out) retraining.

Use it to check influence on your own data, the way the tests do: pick the rows
influence ranks highest, retrain without each, and compare the actual change in test
loss with :meth:`~skinfluence.Influence.loo_effect`.
"""

from __future__ import annotations

import copy

import numpy as np
import scipy.sparse as sp
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
    if sp.issparse(X) and X.format not in ("csr", "csc"):
        X = X.tocsr()  # COO and friends cannot be indexed by rows
    base = explain(estimator, X, y, sample_weight, convergence_tol=np.inf)
    # the engine's own checks: integer rows in range (or boolean masks), never a cast
    if groups:
        sets = base._group_indices(list(train_indices))
    else:
        sets = [np.array([i], dtype=np.intp) for i in base._rows(train_indices)]
    for rows in sets:
        if len(np.unique(rows)) >= base.n_train:
            raise ValueError(
                f"Removing rows {rows.tolist()[:5]} leaves no training rows to refit on "
                f"(the data has {base.n_train})."
            )
    base_test = None if X_test is None else base.test_loss(X_test, y_test)
    light = _without_training_data(estimator)
    results = Parallel(n_jobs=n_jobs)(
        delayed(_retrain_one)(
            light, X, y, sample_weight, rows, X_test, y_test, refit_params, warm_start,
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
        coef_change=None if coef is None else np.array(
            [r["coef"] - coef for r in results]).reshape((len(sets),) + coef.shape),
        intercept_change=np.array([r["intercept"] - intercept for r in results]).reshape(
            (len(sets),) + intercept.shape),
    )
    if X_test is not None:
        out.loss_change = np.array([r["test"] for r in results]).reshape(
            len(sets), len(base_test))
    return out


def _without_training_data(estimator):
    """A shallow copy without skinfluence's reference to the training data.

    Each refit task receives the estimator; the rows already travel as ``X`` (which
    a distributed backend broadcasts once), so they need not travel again inside it.
    """
    if not hasattr(estimator, "_influence_data"):
        return estimator
    light = copy.copy(estimator)
    light.__dict__.pop("_influence_data", None)
    light.__dict__.pop("_influence_engines", None)
    return light


def pearson_r(predicted, actual) -> float:
    """Pearson correlation of predicted vs actual changes (the paper's Fig. 2 metric)."""
    predicted = np.asarray(predicted, dtype=np.float64).ravel()
    actual = np.asarray(actual, dtype=np.float64).ravel()
    return float(np.corrcoef(predicted, actual)[0, 1])
