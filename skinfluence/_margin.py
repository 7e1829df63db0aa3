"""Margin losses of support vector machines, for influence on SVM objectives.

Targets are -1/+1 (one output), or, for one-vs-rest models, an ``(n_samples,
n_classes)`` array of *signed weights*: the sign says whether the row belongs to the
class of that output, the magnitude multiplies that output's loss (liblinear weights
the positive rows of each one-vs-rest problem by the class weight, the negative rows
by one).  Test targets are encoded with unit magnitudes.
"""

from __future__ import annotations

import numpy as np

from sklearn.utils.multiclass import check_classification_targets

from ._adapters import encode_labels
from .losses import Loss, SmoothHinge, _as_2d

__all__ = [
    "HingeSurrogate",
    "SquaredHinge",
    "OneVsRest",
    "margin_targets",
    "margin_encoder",
    "check_classifier_targets",
]


class HingeSurrogate(Loss):
    """The hinge ``max(0, 1 - y*raw)`` with derivatives of the smooth hinge at ``t``.

    Koh & Liang (Section 4.1) compute influence of a hinge-loss SVM with the
    derivatives of ``SmoothHinge(t)`` at the SVM's own weights, and compare with the
    change of the *hinge* loss after retraining.  This loss does exactly that: its
    values (test losses, losses after a Newton step) are the hinge, its gradients and
    Hessians those of the smooth hinge.  With ``t=0`` the derivatives are the hinge's
    own (zero curvature almost everywhere), the paper's failing baseline.

    Parameters
    ----------
    t : float, default=0.001
        Smoothing temperature of the derivatives, ``t >= 0``.
    """

    def __init__(self, t: float = 0.001):
        self.smooth = SmoothHinge(t)
        self.t = self.smooth.t
        self.twice_differentiable = self.smooth.twice_differentiable

    def value(self, y, raw):
        slack = 1.0 - np.asarray(y, dtype=np.float64) * _as_2d(raw)[:, 0]
        return np.maximum(slack, 0.0)

    def gradient(self, y, raw):
        return self.smooth.gradient(y, raw)

    def hessian(self, y, raw):
        return self.smooth.hessian(y, raw)

    def __repr__(self) -> str:
        return f"HingeSurrogate(t={self.t!r})"


class SquaredHinge(Loss):
    """liblinear's squared hinge ``max(0, 1 - y*raw)^2`` with y in {-1, +1}.

    Once differentiable; its second derivative ``2 * [1 - y*raw > 0]`` jumps only on
    the margin, where a fitted squared-hinge SVM has (generically) no rows.
    """

    def value(self, y, raw):
        slack = 1.0 - np.asarray(y, dtype=np.float64) * _as_2d(raw)[:, 0]
        return np.square(np.maximum(slack, 0.0))

    def gradient(self, y, raw):
        y = np.asarray(y, dtype=np.float64)
        slack = 1.0 - y * _as_2d(raw)[:, 0]
        return (-2.0 * y * np.maximum(slack, 0.0))[:, None]

    def hessian(self, y, raw):
        slack = 1.0 - np.asarray(y, dtype=np.float64) * _as_2d(raw)[:, 0]
        return (2.0 * (slack > 0))[:, None, None].astype(np.float64)


class OneVsRest(Loss):
    """Sum over outputs of a binary margin loss, each output its own problem.

    Parameters
    ----------
    binary : Loss
        A one-output margin loss taking -1/+1 targets.

    Targets are signed weights of shape (n_samples, n_outputs) (see the module
    docstring); the Hessian is diagonal in the outputs.
    """

    def __init__(self, binary: Loss):
        self.binary = binary
        self.twice_differentiable = binary.twice_differentiable

    @staticmethod
    def _split(y, raw):
        y = np.asarray(y, dtype=np.float64)
        raw = _as_2d(raw)
        if y.shape != raw.shape:
            raise ValueError(f"targets of shape {y.shape} for raw predictions {raw.shape}.")
        return np.sign(y).ravel(), np.abs(y), raw.reshape(-1, 1)

    def value(self, y, raw):
        sign, weight, flat = self._split(y, raw)
        return np.sum(weight * self.binary.value(sign, flat).reshape(weight.shape), axis=1)

    def gradient(self, y, raw):
        sign, weight, flat = self._split(y, raw)
        return weight * self.binary.gradient(sign, flat).reshape(weight.shape)

    def hessian(self, y, raw):
        sign, weight, flat = self._split(y, raw)
        diag = weight * self.binary.hessian(sign, flat).reshape(weight.shape)
        n, K = diag.shape
        hess = np.zeros((n, K, K))
        hess[:, np.arange(K), np.arange(K)] = diag
        return hess

    def __repr__(self) -> str:
        return f"OneVsRest({self.binary!r})"


def margin_targets(y_idx: np.ndarray, n_classes: int, positive_weight=None) -> np.ndarray:
    """-1/+1 targets (binary), or one-vs-rest signed weights (n, n_classes).

    ``positive_weight[k]`` (default 1) is the magnitude of the targets of the rows of
    class ``k`` in output ``k``; other rows have -1.
    """
    if n_classes == 2:
        return np.where(y_idx == 1, 1.0, -1.0)
    targets = -np.ones((len(y_idx), n_classes))
    rows = np.arange(len(y_idx))
    targets[rows, y_idx] = 1.0 if positive_weight is None else positive_weight[y_idx]
    return targets


def margin_encoder(classes):
    """Encoder of test labels into unit-magnitude margin targets."""
    def encode(y_new):
        return margin_targets(encode_labels(classes, y_new), len(classes))

    return encode


def check_classifier_targets(est, y) -> np.ndarray:
    """Store ``classes_`` and return label indices; at least two classes are needed."""
    check_classification_targets(y)
    est.classes_, y_idx = np.unique(y, return_inverse=True)
    if len(est.classes_) < 2:
        raise ValueError(
            f"{type(est).__name__} needs samples of at least 2 classes in the data, but "
            f"the data contains only one class: {est.classes_[0]!r}."
        )
    return y_idx
