"""Training-set attacks (Koh & Liang, 2017, Section 5.2).

``I_pert,loss(z_i, z_t)`` is the gradient of a test loss in the features of training row
``i``.  Moving the row a small step along its sign raises the test loss the most (to first
order, per unit of L-infinity change): the training-set analogue of a fast-gradient-sign
test attack.  :func:`training_set_attack` iterates that step on one or a few training
rows, projecting each row back onto the valid inputs after every step (a box such as
``[0, 255]``, an L-infinity budget around the original row, and a grid such as 8-bit pixel
levels) and retraining the model on the attacked data before the next step, and reports
which predictions on the targeted test points flipped.

Measuring how far a few rows can move the model is a way to quantify how much it leans on
them; the paper shows that one training image out of 1,800 can flip a confident test
prediction.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from ._explained import _is_pipeline, influence_engine, own_losses, refit_like

__all__ = ["training_set_attack", "AttackResult", "project_rows"]


@dataclass
class AttackResult:
    """What a training-set attack did.

    Attributes
    ----------
    train_indices : ndarray of shape (n_rows,)
        Positions of the attacked training rows.
    X_original : ndarray of shape (n_rows, n_features)
        Those rows before the attack.
    X_attacked : ndarray of shape (n_rows, n_features)
        Those rows after the last step (on the valid set: box, budget and grid).
    predictions_before, predictions_after : ndarray of shape (n_targets,)
        Predictions on the targeted test points by the model fitted on the clean data and
        by the model fitted on the attacked data.
    flipped : ndarray of bool of shape (n_targets,)
        Where the prediction changed.
    target_loss : ndarray of shape (n_steps + 1,)
        Mean loss of the targeted test points before the attack (entry 0) and after each
        step's retraining.
    n_steps : int
        Steps taken: fewer than asked when every prediction flipped early, or when the
        projection sent the rows back where they were (the attack cannot move further).
    estimator : fitted estimator
        The model retrained on the attacked data.
    """

    train_indices: np.ndarray
    X_original: np.ndarray
    X_attacked: np.ndarray
    predictions_before: np.ndarray
    predictions_after: np.ndarray
    target_loss: np.ndarray
    n_steps: int
    estimator: object = field(repr=False)

    @property
    def flipped(self) -> np.ndarray:
        return self.predictions_after != self.predictions_before

    @property
    def n_flipped(self) -> int:
        """Number of targeted test predictions that flipped."""
        return int(self.flipped.sum())

    @property
    def fraction_flipped(self) -> float:
        """Share of the targeted test predictions that flipped."""
        return float(self.flipped.mean()) if self.flipped.size else 0.0

    @property
    def perturbation(self) -> np.ndarray:
        """``X_attacked - X_original``, shape (n_rows, n_features)."""
        return self.X_attacked - self.X_original


def project_rows(X_rows, X_original, *, bounds=None, epsilon=None, grid=None) -> np.ndarray:
    """Project rows onto the valid inputs: a box, an L-infinity ball, a grid.

    Parameters
    ----------
    X_rows : ndarray of shape (n_rows, n_features)
        Rows to project.
    X_original : ndarray of shape (n_rows, n_features)
        The unattacked rows (centre of the ``epsilon`` ball).
    bounds : (float, float) or (ndarray, ndarray), default=None
        Smallest and largest valid value of each feature (e.g. ``(0, 1)`` for pixels).
    epsilon : float, default=None
        Largest change of any single feature (L-infinity budget).
    grid : float, default=None
        Spacing of the valid values, counted from 0 (``1 / 255`` for 8-bit pixels
        scaled to ``[0, 1]``; ``1`` for integer intensities).  The box and the budget are
        shrunk to grid points first, so rounding never leaves them.

    Returns
    -------
    ndarray of shape (n_rows, n_features)
    """
    X_rows = np.asarray(X_rows, dtype=np.float64)
    X_original = np.asarray(X_original, dtype=np.float64)
    lower = np.full_like(X_original, -np.inf)
    upper = np.full_like(X_original, np.inf)
    if bounds is not None:
        lower = np.maximum(lower, np.asarray(bounds[0], dtype=np.float64))
        upper = np.minimum(upper, np.asarray(bounds[1], dtype=np.float64))
    if epsilon is not None:
        lower = np.maximum(lower, X_original - epsilon)
        upper = np.minimum(upper, X_original + epsilon)
    if grid is not None:
        # tolerance: bounds such as 1.0 with grid 1/255 are grid points up to rounding
        lower = np.ceil(lower / grid - 1e-9) * grid
        upper = np.floor(upper / grid + 1e-9) * grid
        X_rows = np.round(X_rows / grid) * grid
    return np.clip(X_rows, lower, upper)


def _check_options(step_size, n_steps, n_rows, epsilon, grid, bounds) -> None:
    if not (isinstance(n_steps, numbers.Integral) and n_steps >= 1):
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}.")
    if not (isinstance(n_rows, numbers.Integral) and n_rows >= 1):
        raise ValueError(f"n_rows must be a positive integer, got {n_rows!r}.")
    if not (np.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be a positive number, got {step_size!r}.")
    if epsilon is not None and not epsilon >= 0:
        raise ValueError(f"epsilon must be >= 0 or None, got {epsilon!r}.")
    if grid is not None:
        if not grid > 0:
            raise ValueError(f"grid must be a positive spacing or None, got {grid!r}.")
        if step_size < grid / 2:
            raise ValueError(
                f"step_size={step_size!r} is below half the grid spacing {grid!r}: every "
                "step would round back to the row it started from."
            )
    if bounds is not None and len(bounds) != 2:
        raise ValueError("bounds must be a pair (lower, upper).")


def _fitted(estimator, X, y):
    try:
        check_is_fitted(estimator)
        return estimator
    except NotFittedError:
        return clone(estimator).fit(X, y)


def _mean_gradient(model, X, y, X_target, y_target, rows, options) -> np.ndarray:
    """Mean ``I_pert,loss`` over the targets for the given rows, (n_rows, n_features)."""
    if hasattr(model, "perturbation_influence"):
        grad = model.perturbation_influence(X_target, y_target, train_indices=rows,
                                            aggregate="mean", **options)
    else:
        engine, _ = influence_engine(model, X, y, **options)
        grad = engine.perturbation_influence(X_target, y_target, train_indices=rows,
                                             aggregate="mean")
    grad = np.asarray(grad, dtype=np.float64)
    # inputs without a derivative (categories, missing entries) are left alone
    return np.nan_to_num(grad, nan=0.0)


def _target_loss(model, X, y, X_target, y_target) -> float:
    return float(np.mean(own_losses(model, X_target, y_target, X, y)))


def training_set_attack(estimator, X, y, X_target, y_target, *, train_indices=None,
                        n_rows: int = 1, step_size: float = 1.0, n_steps: int = 10,
                        epsilon: float | None = None, bounds=None, grid: float | None = None,
                        stop_when_flipped: bool = True, warm_start: bool = False,
                        **options) -> AttackResult:
    """Perturb a few training rows to raise the loss on target test points (Section 5.2).

    Each step moves every attacked row by ``step_size * sign(I_pert,loss)`` (the mean
    over the targets, so the step raises their mean loss to first order), projects it
    onto the valid inputs (:func:`project_rows`) and retrains the model on the attacked
    data; the next gradient is taken at the retrained model.

    Parameters
    ----------
    estimator : estimator
        A model with influence (a skinfluence estimator, a
        :class:`~skinfluence.pipeline.Pipeline` ending with one, or a scikit-learn model
        that :func:`skinfluence.explain` supports), fitted on ``(X, y)`` or not (then it
        is fitted first).  It is not modified: each step retrains a clone.
    X : array-like of shape (n_samples, n_features)
        Training inputs (dense).
    y : array-like of shape (n_samples,)
        Training targets (unchanged by the attack).
    X_target, y_target : array-like
        The test points whose mean loss the attack raises, with their true labels.
    train_indices : array-like of int, default=None
        Positions of the rows to attack.  When None, the ``n_rows`` rows whose
        perturbation gradient has the largest L1 norm at the clean fit: those a sign step
        moves the target loss most.
    n_rows : int, default=1
        How many rows to attack when ``train_indices`` is None.
    step_size : float, default=1.0
        L-infinity size of one step, in feature units.
    n_steps : int, default=10
        Largest number of steps (each one retrains the model).
    epsilon : float, default=None
        Largest total change of any feature of an attacked row (L-infinity budget).
    bounds : (lower, upper), default=None
        Valid range of every feature (scalars or per-feature arrays).
    grid : float, default=None
        Spacing of the valid feature values (``1/255`` for 8-bit images in ``[0, 1]``,
        ``1`` for integer intensities); must not exceed ``2 * step_size``.
    stop_when_flipped : bool, default=True
        Stop once every target's prediction has flipped.
    warm_start : bool, default=False
        Start each retraining from the previous fit when the estimator supports it.
        Faster for first-order solvers on large data; Newton solvers warm-started this
        close to their optimum may warn that their line search stalled.
    **options
        Engine options (``solver``, ``damping``, ...).

    Returns
    -------
    AttackResult
        With ``flipped``, ``n_flipped``, ``fraction_flipped``, ``target_loss`` per step,
        the attacked rows and the retrained model.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from skinfluence.attack import training_set_attack
    >>> from skinfluence.linear_model import LogisticRegression
    >>> X, y = load_digits(n_class=2, return_X_y=True)
    >>> clf = LogisticRegression(C=0.1, tol=1e-8, max_iter=1000).fit(X[:200], y[:200])
    >>> result = training_set_attack(clf, X[:200], y[:200], X[200:201], y[200:201],
    ...                              step_size=1, n_steps=3, bounds=(0, 16), grid=1)
    >>> result.target_loss.shape[0] <= 4
    True
    """
    _check_options(step_size, n_steps, n_rows, epsilon, grid, bounds)
    if sp.issparse(X):
        raise ValueError("training_set_attack needs dense X (it edits rows in place).")
    if _is_pipeline(estimator) and not hasattr(estimator, "perturbation_influence"):
        raise TypeError(
            "A scikit-learn Pipeline cannot map perturbation gradients back to its input "
            "features; build it with skinfluence.pipeline.make_pipeline instead.")
    X = np.array(X, dtype=np.float64)  # a private copy: the attack edits it
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-d array, got shape {X.shape}.")
    y = np.asarray(y)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}.")
    X_target = np.asarray(X_target, dtype=np.float64)
    y_target = np.asarray(y_target)
    if X_target.ndim != 2 or X_target.shape[1] != X.shape[1]:
        raise ValueError(
            f"X_target must have shape (n_targets, {X.shape[1]}), got {X_target.shape}.")
    if y_target.shape[0] != X_target.shape[0]:
        raise ValueError(
            f"X_target has {X_target.shape[0]} rows but y_target has {y_target.shape[0]}.")

    model = _fitted(estimator, X, y)
    if train_indices is None:
        grad_all = _mean_gradient(model, X, y, X_target, y_target, None, options)
        rows = np.argsort(-np.abs(grad_all).sum(axis=1), kind="stable")[:n_rows]
    else:
        rows = np.atleast_1d(np.asarray(train_indices, dtype=np.intp))
        if rows.ndim != 1 or rows.size == 0 or rows.min() < 0 or rows.max() >= X.shape[0]:
            raise ValueError(
                f"train_indices must be positions in 0..{X.shape[0] - 1}, got {train_indices!r}.")
    original = X[rows].copy()
    before = model.predict(X_target)
    losses = [_target_loss(model, X, y, X_target, y_target)]
    steps = 0
    for steps in range(1, n_steps + 1):
        grad = _mean_gradient(model, X, y, X_target, y_target, rows, options)
        moved = project_rows(X[rows] + step_size * np.sign(grad), original, bounds=bounds,
                             epsilon=epsilon, grid=grid)
        if np.array_equal(moved, X[rows]):
            steps -= 1  # a corner of the valid set: no step changes the rows any more
            break
        X = X.copy()  # the fitted model keeps a reference to its training data
        X[rows] = moved
        model = refit_like(model, X, y, warm_start=warm_start)
        losses.append(_target_loss(model, X, y, X_target, y_target))
        if stop_when_flipped and np.all(model.predict(X_target) != before):
            break
    return AttackResult(
        train_indices=rows, X_original=original, X_attacked=X[rows].copy(),
        predictions_before=before, predictions_after=model.predict(X_target),
        target_loss=np.asarray(losses), n_steps=steps, estimator=model,
    )
