"""Stationarity of a hinge-loss fit, for objectives whose loss is a hinge surrogate.

The hinge is not differentiable on the margin, so a fitted hinge SVM is not a zero of
the smooth surrogate's gradient; it is a point where *some* subgradient of the hinge
objective vanishes.  :class:`HingeStationarityMixin` replaces the objective's
``gradient()`` by the smallest such subgradient: rows with slack ``1 - y f > tol`` have
hinge derivative ``-y``, rows with slack ``< -tol`` zero, and rows on the margin any
``-a y`` with ``a`` in ``[0, 1]`` (chosen by bounded least squares, or given by the
solver's own dual variables).  Its norm is what the engine's convergence check
reads; it is zero exactly when the fit satisfies the SVM's KKT conditions.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import lsq_linear

from .._kernel import KernelObjective
from ..objective import GLMObjective

__all__ = ["HingeGLMObjective", "HingeKernelObjective"]


class HingeStationarityMixin:
    """``gradient()`` = smallest subgradient of the hinge objective at the fit.

    Attributes set by the builder: ``margin_tol`` (slack tolerance of the margin,
    the solver's own KKT tolerance) and ``multipliers`` ((n, K) dual variables
    ``a_i`` in [0, 1], or None to solve for them).
    """

    margin_tol: float = 1e-8
    multipliers: np.ndarray | None = None

    def gradient(self) -> np.ndarray:
        K, p = self.coef.shape
        n = self.n_samples
        Y = np.asarray(self.y, dtype=np.float64).reshape(n, K)
        sign, weight = np.sign(Y), np.abs(Y)
        slack = 1.0 - sign * self.raw
        cost = self.sample_weight[:, None] * weight
        low = (slack > self.margin_tol).astype(np.float64)
        high = (slack >= -self.margin_tol).astype(np.float64)
        if self.multipliers is not None:
            active = np.clip(np.asarray(self.multipliers, dtype=np.float64).reshape(n, K),
                             low, high)
        else:
            active = low
        grad = self.penalty * self.coef - self.design.tdot(cost * active * sign).T
        if self.multipliers is None:
            for k in range(K):
                free = np.flatnonzero((low[:, k] < high[:, k]) & (cost[:, k] > 0))
                if free.size:
                    A = self.design.rows(free).dense().T * (cost[free, k] * sign[free, k])
                    fit = lsq_linear(A, grad[k], bounds=(0.0, 1.0),
                                     method="bvls" if free.size <= 2000 else "trf")
                    grad[k] = grad[k] - A @ fit.x
        return grad.ravel()


class HingeGLMObjective(HingeStationarityMixin, GLMObjective):
    """A linear hinge-loss objective (liblinear's ``LinearSVC`` with ``loss="hinge"``)."""


class HingeKernelObjective(HingeStationarityMixin, KernelObjective):
    """A kernel hinge-loss objective (libsvm's ``SVC``)."""
