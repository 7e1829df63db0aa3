"""Finding and fixing mislabeled training rows (Koh & Liang, 2017, Section 5.4).

A row whose label is wrong is one the model must bend towards: its self-influence
``I_up,loss(z_i, z_i)`` is large in magnitude.  Checking rows in that order, and fixing the
labels found wrong, repairs a noisy training set with fewer checks than checking the rows
with the highest training loss or checking at random.  :func:`simulate_label_fixing` runs
the paper's experiment on any labelled data: flip a share of the labels, rank the rows by
each strategy, "check" the top fraction (restore the true labels of the flipped rows found
there), retrain, and measure both the share of flips found and the test accuracy.
:class:`~skinfluence.display.LabelFixingDisplay` plots the result (paper Fig. 6).
"""

from __future__ import annotations

import numbers
from typing import Callable

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.utils import Bunch, check_random_state

from ._explained import influence_engine, own_losses, refit_like

__all__ = ["flip_labels", "simulate_label_fixing", "RANKINGS"]


def flip_labels(y, fraction: float, *, random_state=None) -> tuple[np.ndarray, np.ndarray]:
    """Give a random share of the rows a wrong label.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Class labels (two classes or more).
    fraction : float
        Share of rows to flip, in ``(0, 1)``.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    y_noisy : ndarray of shape (n_samples,)
        ``y`` with the chosen rows relabelled: the other class for two classes, a class
        drawn uniformly among the others otherwise.
    flipped : ndarray of int
        Positions of the relabelled rows, sorted.
    """
    y = np.asarray(y)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}.")
    classes = np.unique(y)
    if classes.size < 2:
        raise ValueError("flip_labels needs at least two classes in y.")
    rng = check_random_state(random_state)
    n_flip = int(round(fraction * y.shape[0]))
    flipped = np.sort(rng.choice(y.shape[0], size=n_flip, replace=False))
    y_noisy = y.copy()
    for i in flipped:
        others = classes[classes != y[i]]
        y_noisy[i] = others[0] if others.size == 1 else rng.choice(others)
    return y_noisy, flipped


def _rank_self_influence(model, X, y, rng) -> np.ndarray:
    # self_loo_effect = -I_up,loss(z_i, z_i) / n >= 0: the largest magnitude first
    engine, _ = influence_engine(model, X, y)
    return np.argsort(-engine.self_loo_effect(), kind="stable")


def _rank_loo_loss(model, X, y, rng) -> np.ndarray:
    # each row's loss under the model refitted without it (one exact Newton step): an
    # out-of-sample view of its label from a single fit
    engine, _ = influence_engine(model, X, y)
    objective = engine.objective
    losses = objective.loss.value(objective.y, engine.loo_raw_predictions())
    return np.argsort(-losses, kind="stable")


def _rank_train_loss(model, X, y, rng) -> np.ndarray:
    return np.argsort(-own_losses(model, X, y, X, y), kind="stable")


def _rank_random(model, X, y, rng) -> np.ndarray:
    return rng.permutation(len(y))


#: built-in rankings: ``ranking(fitted_model, X, y_noisy, rng) -> order of rows to check``
RANKINGS: dict[str, Callable] = {
    "influence": _rank_self_influence,
    "loo loss": _rank_loo_loss,
    "train loss": _rank_train_loss,
    "random": _rank_random,
}


def _resolve_rankings(rankings) -> dict[str, Callable]:
    if isinstance(rankings, dict):
        items = rankings.items()
    else:
        items = [(name, name) for name in rankings]
    resolved = {}
    for name, ranking in items:
        if callable(ranking):
            resolved[name] = ranking
        elif ranking in RANKINGS:
            resolved[name] = RANKINGS[ranking]
        else:
            raise ValueError(
                f"Unknown ranking {ranking!r}; use one of {sorted(RANKINGS)} or a callable "
                "ranking(fitted_model, X, y_noisy, rng) returning the rows in checking order."
            )
    if not resolved:
        raise ValueError("rankings is empty.")
    return resolved


def _check_order(order, n: int, name: str) -> np.ndarray:
    order = np.asarray(order)
    if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
        raise ValueError(
            f"ranking {name!r} must return every row position 0..{n - 1} once, in checking "
            f"order; got an array of shape {order.shape}.")
    return order


def _check_fractions(fractions) -> np.ndarray:
    fractions = np.atleast_1d(np.asarray(fractions, dtype=np.float64))
    if fractions.ndim != 1 or fractions.size == 0 or np.any((fractions < 0) | (fractions > 1)):
        raise ValueError(f"fractions must be values in [0, 1], got {fractions!r}.")
    return fractions


def _accuracy_after_fixing(model, X, y_fixed, X_test, y_test, warm_start) -> float:
    return float(np.mean(refit_like(model, X, y_fixed, warm_start=warm_start).predict(X_test)
                         == np.asarray(y_test)))


def _one_repeat(estimator, X, y, X_test, y_test, flip_fraction, fractions, rankings, seed,
                warm_start, n_jobs):
    rng = np.random.RandomState(seed)
    y_noisy, flipped = flip_labels(y, flip_fraction, random_state=rng)
    is_flipped = np.zeros(len(y), dtype=bool)
    is_flipped[flipped] = True
    model = clone(estimator).fit(X, y_noisy)
    acc_noisy = float(np.mean(model.predict(X_test) == np.asarray(y_test)))
    n_checked = np.round(fractions * len(y)).astype(int)
    found, jobs = {}, []
    for name, ranking in rankings.items():
        order = _check_order(ranking(model, X, y_noisy, rng), len(y), name)
        found[name] = np.array([is_flipped[order[:k]].sum() for k in n_checked]) / len(flipped)
        for j, k in enumerate(n_checked):
            if k == 0:
                continue
            y_fixed = y_noisy.copy()
            checked = order[:k]
            y_fixed[checked] = y[checked]  # a check restores the true label
            jobs.append((name, j, y_fixed))
    scores = Parallel(n_jobs=n_jobs)(
        delayed(_accuracy_after_fixing)(model, X, y_fixed, X_test, y_test, warm_start)
        for _, _, y_fixed in jobs)
    accuracy = {name: np.full(len(fractions), acc_noisy) for name in rankings}
    for (name, j, _), score in zip(jobs, scores):
        accuracy[name][j] = score
    return found, accuracy, acc_noisy, len(flipped)


def simulate_label_fixing(estimator, X_train, y_train, X_test, y_test, *,
                          flip_fraction: float = 0.1,
                          fractions=(0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3),
                          rankings=("influence", "train loss", "random"),
                          n_repeats: int = 1, random_state=None, warm_start: bool = True,
                          n_jobs=None) -> Bunch:
    """The paper's mislabel experiment (Section 5.4, Fig. 6) on your data.

    For each repeat: flip ``flip_fraction`` of the training labels (a new random set each
    time), fit the estimator on the noisy labels, order the rows by each ranking, and for
    each fraction ``f`` check the first ``f * n_train`` rows: the flipped ones found there
    get their true label back.  Record the share of all flipped rows found, and the test
    accuracy of the estimator retrained on the partly fixed labels.  No ranking sees the
    test data or the true labels.

    Parameters
    ----------
    estimator : estimator
        Unfitted template, e.g. ``skinfluence.linear_model.LogisticRegression(tol=1e-8)``
        or a pipeline ending with one; cloned for every fit.  It must be one
        :func:`skinfluence.explain` or :class:`~skinfluence.InfluenceMixin` supports when
        the ``"influence"`` or ``"train loss"`` rankings are used.
    X_train, y_train : training data with its *true* labels
    X_test, y_test : held-out data for the accuracy
    flip_fraction : float, default=0.1
        Share of training labels flipped in each repeat.
    fractions : array-like of float, default=(0, 0.05, ..., 0.3)
        Shares of the training rows checked.
    rankings : sequence of str or dict of str -> str or callable
        ``"influence"`` (self-influence, largest magnitude first: the paper's),
        ``"loo loss"`` (highest loss at the row's one-step Newton leave-one-out
        prediction first), ``"train loss"`` (highest loss under the model's own loss
        first), ``"random"``; or callables
        ``ranking(fitted_model, X_train, y_noisy, rng)`` returning every row position in
        checking order (e.g. another library's label-issue ranking).
    n_repeats : int, default=1
        Independent repeats (different flipped rows).
    random_state : int, RandomState instance or None, default=None
    warm_start : bool, default=True
        Start each refit from the noisy fit when the estimator supports it.
    n_jobs : int, default=None
        Parallel refits (joblib).

    Returns
    -------
    Bunch with
        ``fractions`` : (n_fractions,);
        ``found`` : dict ranking -> (n_repeats, n_fractions), share of flipped rows found;
        ``accuracy`` : dict ranking -> (n_repeats, n_fractions), test accuracy after fixing;
        ``accuracy_noisy`` : (n_repeats,), before any fix;
        ``accuracy_clean`` : float, fitted on the true labels;
        ``n_flipped`` : int, flipped rows per repeat; ``n_train`` : int.
    """
    if not (isinstance(n_repeats, numbers.Integral) and n_repeats >= 1):
        raise ValueError(f"n_repeats must be a positive integer, got {n_repeats!r}.")
    fractions = _check_fractions(fractions)
    rankings = _resolve_rankings(rankings)
    y_train = np.asarray(y_train)
    seeds = check_random_state(random_state).randint(np.iinfo(np.int32).max, size=n_repeats)
    found = {name: [] for name in rankings}
    accuracy = {name: [] for name in rankings}
    acc_noisy = []
    n_flipped = 0
    for seed in seeds:
        f, a, noisy, n_flipped = _one_repeat(
            estimator, X_train, y_train, X_test, y_test, flip_fraction, fractions, rankings,
            seed, warm_start, n_jobs)
        for name in rankings:
            found[name].append(f[name])
            accuracy[name].append(a[name])
        acc_noisy.append(noisy)
    clean = clone(estimator).fit(X_train, y_train)
    return Bunch(
        fractions=fractions,
        found={name: np.array(v) for name, v in found.items()},
        accuracy={name: np.array(v) for name, v in accuracy.items()},
        accuracy_noisy=np.array(acc_noisy),
        accuracy_clean=float(np.mean(clean.predict(X_test) == np.asarray(y_test))),
        n_flipped=n_flipped,
        n_train=len(y_train),
    )
