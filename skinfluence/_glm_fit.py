"""Fitting an L2-regularized linear objective with the engine's own derivatives.

skinfluence's own estimators (smooth-hinge SVMs, kernel logistic regression) are
fitted by minimizing the same :class:`~skinfluence.objective.GLMObjective` that the
influence engine differentiates, so that "the model" and "the objective influence
describes" cannot drift apart.  Trust-region Newton-CG (:func:`scipy.optimize.minimize`
with ``method="trust-ncg"``) uses the objective's exact Hessian-vector products and
converges quadratically, which leave-one-out comparisons need.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import minimize
from scipy.sparse.linalg import LinearOperator, cg
from sklearn.exceptions import ConvergenceWarning

from .losses import Loss
from .objective import GLMObjective, LinearDesign

__all__ = ["fit_linear_objective", "smooth_hinge_schedule"]


def fit_linear_objective(loss: Loss, design: LinearDesign, y, n_outputs: int, *,
                         penalty, sample_weight, tol: float = 1e-8, max_iter: int = 1000,
                         coef_init=None, warm_up_losses=()) -> tuple[np.ndarray, int]:
    """Minimize ``sum_i s_i l(y_i, Theta x~_i) + 0.5 sum lambda_j Theta_kj^2``.

    Parameters
    ----------
    loss, design, y
        As for :class:`~skinfluence.objective.GLMObjective`.
    n_outputs : int
    penalty : float or ndarray of shape (n_params_per_output,)
    sample_weight : ndarray of shape (n_samples,)
    tol : float, default=1e-8
        Stop when the gradient norm of the objective divided by ``sum(s)`` is below.
    max_iter : int, default=1000
        Newton iterations.
    coef_init : ndarray of shape (n_outputs, n_params_per_output), default=None
    warm_up_losses : sequence of Loss, default=()
        Easier losses minimized first, each from the previous solution (continuation:
        a smooth hinge at a larger temperature before a small one, whose curvature
        near the margin otherwise makes Newton crawl).

    Returns
    -------
    coef : ndarray of shape (n_outputs, n_params_per_output)
    n_iter : int
    """
    K, p = int(n_outputs), design.n_params
    n_iter = 0
    for easier in warm_up_losses:
        coef_init, steps = fit_linear_objective(
            easier, design, y, n_outputs, penalty=penalty, sample_weight=sample_weight,
            tol=max(tol, 1e-6), max_iter=max_iter, coef_init=coef_init)
        n_iter += steps
    sw = np.asarray(sample_weight, dtype=np.float64)
    scale = max(float(sw.sum()), np.finfo(float).tiny)
    cache: dict = {}

    def objective_at(theta: np.ndarray) -> GLMObjective:
        key = theta.tobytes()
        if cache.get("key") != key:
            cache["key"] = key
            cache["obj"] = GLMObjective(loss, design, y, theta.reshape(K, p), penalty=penalty,
                                        sample_weight=sw)
        return cache["obj"]

    def fun(theta):
        obj = objective_at(theta)
        value = sw @ loss.value(obj.y, obj.raw) + 0.5 * np.sum(np.tile(obj.penalty, K) * theta**2)
        return value / scale, obj.gradient() / scale

    def hessp(theta, v):
        return objective_at(theta).hessp(v) / scale

    x0 = np.zeros(K * p) if coef_init is None else np.asarray(coef_init, float).ravel()
    result = minimize(fun, x0, jac=True, hessp=hessp, method="trust-ncg",
                      options={"gtol": tol, "maxiter": max_iter})
    theta, grad = result.x, result.jac
    # trust-ncg stops on a lost-precision trust-region step before it reaches a tight
    # tol; plain Newton steps with an accurate CG solve finish the job (quadratically)
    for _ in range(_POLISH_STEPS):
        if np.linalg.norm(grad) <= tol:
            break
        step = _newton_step(lambda v: hessp(theta, v), grad)
        value_new, grad_new = fun(theta + step)
        if not np.linalg.norm(grad_new) < np.linalg.norm(grad):
            break
        theta, grad = theta + step, grad_new
    if np.linalg.norm(grad) > tol:
        warnings.warn(
            f"The solver did not converge in {result.nit} iterations (gradient norm "
            f"{np.linalg.norm(grad):.2g} > tol={tol:g}): {result.message} "
            "Increase max_iter or tol.",
            ConvergenceWarning,
            stacklevel=3,
        )
    return theta.reshape(K, p), n_iter + int(result.nit)


def smooth_hinge_schedule(t: float) -> list[float]:
    """Temperatures ``..., 100 t, 10 t`` below 1 to warm up a smooth hinge at ``t``."""
    temps = []
    warm = 10.0 * t
    while warm <= 1.0:
        temps.append(warm)
        warm *= 10.0
    return temps[::-1]


#: Newton steps after the trust-region phase
_POLISH_STEPS = 3


def _newton_step(hessp, grad: np.ndarray) -> np.ndarray:
    """``-H^-1 grad`` by conjugate gradients (H is positive semi-definite)."""
    size = grad.size
    operator = LinearOperator((size, size), matvec=hessp, dtype=np.float64)
    step, _ = cg(operator, -grad, rtol=1e-12, atol=0.0, maxiter=10 * size)
    return step
