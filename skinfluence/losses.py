"""Pointwise losses and their derivatives in the raw prediction.

A loss knows nothing of features or parameters: it maps encoded targets ``y`` and
raw predictions ``raw`` of shape ``(n_samples, n_outputs)`` to per-sample values,
first derivatives ``(n_samples, n_outputs)`` and second derivatives
``(n_samples, n_outputs, n_outputs)``.  The parameter layout (see
:mod:`skinfluence.objective`) turns these into gradients and Hessians in the
parameters by the chain rule.

Targets are encoded the way each loss expects them:

==========================  =======================================  =========
loss                        target encoding                          outputs
==========================  =======================================  =========
:class:`BinaryLogistic`     0/1 (``classes_[1]`` is the positive)    1
:class:`SoftmaxCrossEntropy` class index ``0 .. K-1``                K
:class:`SmoothHinge`        -1/+1                                    1
:class:`SquaredError`       real values, shape (n,) or (n, K)        K
==========================  =======================================  =========
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_expit, logsumexp, softmax

__all__ = [
    "Loss",
    "BinaryLogistic",
    "SoftmaxCrossEntropy",
    "SmoothHinge",
    "SquaredError",
]


class Loss:
    """Base class of pointwise losses ``l(y, raw)``.

    Subclasses implement :meth:`value`, :meth:`gradient` and :meth:`hessian`.
    ``shift_invariant`` is true when adding the same constant to every output
    leaves the loss unchanged (softmax): the engine then knows the exact null
    directions of the Hessian along unpenalized coordinates.
    """

    shift_invariant: bool = False
    #: whether :meth:`hessian` is identically zero somewhere it matters (raw hinge)
    twice_differentiable: bool = True

    def value(self, y: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """Per-sample loss, shape ``(n_samples,)``."""
        raise NotImplementedError

    def gradient(self, y: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """Derivative in the raw prediction, shape ``(n_samples, n_outputs)``."""
        raise NotImplementedError

    def hessian(self, y: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """Second derivative, shape ``(n_samples, n_outputs, n_outputs)``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


def _as_2d(raw: np.ndarray) -> np.ndarray:
    raw = np.asarray(raw, dtype=np.float64)
    return raw[:, None] if raw.ndim == 1 else raw


class BinaryLogistic(Loss):
    """Log loss of a single logit: ``log(1 + exp(raw)) - y * raw`` with y in {0, 1}."""

    def value(self, y, raw):
        raw = _as_2d(raw)[:, 0]
        # -log sigma(raw) for y=1 and -log sigma(-raw) for y=0, both stable
        return -log_expit(np.where(y > 0.5, raw, -raw))

    def gradient(self, y, raw):
        raw = _as_2d(raw)
        return expit(raw) - np.asarray(y, dtype=np.float64)[:, None]

    def hessian(self, y, raw):
        prob = expit(_as_2d(raw))
        return (prob * (1.0 - prob))[:, :, None]


class SoftmaxCrossEntropy(Loss):
    """Multinomial log loss ``logsumexp(raw) - raw[y]`` with y a class index."""

    shift_invariant = True

    def value(self, y, raw):
        raw = _as_2d(raw)
        idx = np.asarray(y, dtype=np.intp)
        return logsumexp(raw, axis=1) - raw[np.arange(raw.shape[0]), idx]

    def gradient(self, y, raw):
        grad = softmax(_as_2d(raw), axis=1)
        grad[np.arange(grad.shape[0]), np.asarray(y, dtype=np.intp)] -= 1.0
        return grad

    def hessian(self, y, raw):
        prob = softmax(_as_2d(raw), axis=1)
        hess = -prob[:, :, None] * prob[:, None, :]
        diag = np.arange(prob.shape[1])
        hess[:, diag, diag] += prob
        return hess


class SmoothHinge(Loss):
    """Koh & Liang's smooth hinge ``t * log(1 + exp((1 - y*raw) / t))``, y in {-1, +1}.

    It tends to the hinge ``max(0, 1 - y*raw)`` as ``t -> 0``; ``t=0`` is the hinge
    itself, whose second derivative is zero almost everywhere (so influence computed
    from it overestimates, paper Fig. 3).

    Parameters
    ----------
    t : float, default=0.001
        Smoothing temperature, ``t >= 0``.
    """

    def __init__(self, t: float = 0.001):
        if not t >= 0:
            raise ValueError(f"SmoothHinge needs t >= 0, got t={t!r}.")
        self.t = float(t)
        self.twice_differentiable = self.t > 0

    def _slack(self, y, raw):
        return 1.0 - np.asarray(y, dtype=np.float64) * _as_2d(raw)[:, 0]

    def value(self, y, raw):
        slack = self._slack(y, raw)
        if self.t == 0:
            return np.maximum(slack, 0.0)
        return self.t * np.logaddexp(0.0, slack / self.t)

    def gradient(self, y, raw):
        slack = self._slack(y, raw)
        active = (slack > 0).astype(np.float64) if self.t == 0 else expit(slack / self.t)
        return (-np.asarray(y, dtype=np.float64) * active)[:, None]

    def hessian(self, y, raw):
        slack = self._slack(y, raw)
        if self.t == 0:
            return np.zeros((slack.shape[0], 1, 1))
        sig = expit(slack / self.t)
        return (sig * (1.0 - sig) / self.t)[:, None, None]


class SquaredError(Loss):
    """Half squared error ``0.5 * ||raw - y||^2`` (one or several outputs)."""

    def value(self, y, raw):
        resid = _as_2d(raw) - _as_2d(y)
        return 0.5 * np.einsum("ij,ij->i", resid, resid)

    def gradient(self, y, raw):
        return _as_2d(raw) - _as_2d(y)

    def hessian(self, y, raw):
        raw = _as_2d(raw)
        return np.broadcast_to(np.eye(raw.shape[1]), (raw.shape[0],) + (raw.shape[1],) * 2).copy()
