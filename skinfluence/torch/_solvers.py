"""Inverse-HVP solvers on torch tensors, with the contract of :mod:`skinfluence.solvers`.

Each solver has ``fit(operator)`` and ``solve(B)`` for a block ``B`` of shape
``(n_params, m)``; it adds ``damping`` to the diagonal of ``H`` (in the operator's own
scale, the Hessian of ``J``) and works in the complement of ``operator.null_space()``,
so ``solve(B) = (H + damping I)^+ B`` for ``B`` orthogonal to the null space.  They run
where the operator runs (CUDA or CPU) and in its dtype.

- ``"direct"`` builds the dense Hessian from HVPs and hands it to the numpy
  :class:`skinfluence.solvers.DirectSolver` (same Cholesky, same automatic damping and
  warning for singular or indefinite Hessians): for small parameter counts.
- ``"cg"``: conjugate gradients on all columns at once (one vmapped HVP block per
  iteration), each column with its own step sizes and stopping test.
- ``"lissa"``: the stochastic recursion of Agarwal et al. used by Koh & Liang, the
  same parameters as :class:`skinfluence.solvers.LissaSolver`.
- ``"arnoldi"``: a rank-``rank`` eigendecomposition of ``H`` from a Lanczos (the
  symmetric Arnoldi) iteration, inverted on that subspace (Schioppa et al., 2022).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.utils import check_random_state

from ..exceptions import IndefiniteHessianWarning, NotConvergedWarning
from ..solvers import DirectSolver, LissaSolver

__all__ = [
    "TorchDirectSolver",
    "TorchCGSolver",
    "TorchLissaSolver",
    "TorchArnoldiSolver",
    "TORCH_SOLVERS",
    "make_torch_solver",
    "largest_eigenvalue",
]


class _TorchSolver:
    def __init__(self, damping: float = 0.0):
        if not damping >= 0:
            raise ValueError(f"damping must be >= 0, got {damping!r}.")
        self.damping = float(damping)

    def fit(self, operator) -> "_TorchSolver":
        raise NotImplementedError

    def solve(self, B: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _project(self, B: torch.Tensor) -> torch.Tensor:
        """Remove the null-space component (a no-op when there is none)."""
        null = self._null
        if null.shape[1] == 0:
            return B
        return B - null @ (null.T @ B)

    def quadratic_forms(self, B: torch.Tensor) -> torch.Tensor:
        """``diag(B.T (H + damping)^-1 B)`` for ``B`` of shape (n_params, m)."""
        return (B * self.solve(B)).sum(dim=0)


def _as_block(B: torch.Tensor) -> tuple[torch.Tensor, bool]:
    return (B[:, None], True) if B.ndim == 1 else (B, False)


class TorchDirectSolver(_TorchSolver):
    """Dense Hessian from HVPs, factored by :class:`skinfluence.solvers.DirectSolver`.

    The factorization runs in float64 on the CPU (parameter counts where a dense
    Hessian makes sense factor in well under a second there); right-hand sides move to
    the CPU and back.

    Parameters
    ----------
    damping : float, default=0.0
    min_relative_eigenvalue : float, default=1e-8
        See :class:`skinfluence.solvers.DirectSolver`.
    """

    def __init__(self, damping: float = 0.0, *, min_relative_eigenvalue: float = 1e-8):
        super().__init__(damping)
        self.min_relative_eigenvalue = min_relative_eigenvalue

    def fit(self, operator) -> "TorchDirectSolver":
        hess = operator.hessian().detach().to("cpu", torch.float64).numpy().copy()
        null = operator.null_space().detach().to("cpu", torch.float64).numpy()
        self._null = operator.null_space()
        self.numpy_solver_ = DirectSolver(
            self.damping, min_relative_eigenvalue=self.min_relative_eigenvalue
        ).fit_matrix(hess, null)
        self.damping_ = self.numpy_solver_.damping_
        self.min_eigenvalue_ = self.numpy_solver_.min_eigenvalue_
        return self

    def solve(self, B):
        out = self.numpy_solver_.solve(B.detach().to("cpu", torch.float64).numpy())
        return torch.from_numpy(np.ascontiguousarray(out)).to(device=B.device, dtype=B.dtype)

    def quadratic_forms(self, B):
        out = self.numpy_solver_.quadratic_forms(B.detach().to("cpu", torch.float64).numpy())
        return torch.from_numpy(np.ascontiguousarray(out)).to(device=B.device, dtype=B.dtype)


class TorchCGSolver(_TorchSolver):
    """Conjugate gradients on a block of right-hand sides, one HVP block per iteration.

    Columns are independent CG runs that share each vmapped Hessian-vector product;
    a column stops when ``||H x - b|| <= rtol ||b||`` (the recursive residual).  A
    direction of non-positive curvature stops its column with a warning: the Hessian is
    not positive definite, add ``damping``.

    Parameters
    ----------
    damping : float, default=0.0
    rtol : float, default=None
        Relative residual tolerance; None means 1e-8 in float64 and 1e-5 in float32.
    maxiter : int, default=None
        Iteration cap (``10 * n_params`` when None, as scipy's).
    preconditioner : None
        Only None: a Jacobi preconditioner needs the Hessian's diagonal, which a
        network does not give cheaply.
    """

    def __init__(self, damping=0.0, *, rtol=None, maxiter=None, preconditioner=None):
        super().__init__(damping)
        if preconditioner is not None:
            raise ValueError(
                f"The torch CG solver takes no preconditioner (got {preconditioner!r})."
            )
        self.rtol = rtol
        self.maxiter = maxiter
        self.preconditioner = preconditioner

    def fit(self, operator) -> "TorchCGSolver":
        self.operator_ = operator
        self.damping_ = self.damping
        self._null = operator.null_space()
        self.n_iter_ = []
        return self

    def _apply(self, V):
        # the null directions are eigenvectors of H, so projecting keeps CG in their
        # complement: the pseudo-inverse there
        return self._project(self.operator_.hessp(V)) + self.damping * V

    def solve(self, B):
        B2, vec = _as_block(B)
        op = self.operator_
        B2 = self._project(B2.to(device=op.device, dtype=op.dtype))
        rtol = self.rtol if self.rtol is not None else (
            1e-8 if op.dtype == torch.float64 else 1e-5)
        maxiter = self.maxiter if self.maxiter is not None else 10 * op.n_params
        X = torch.zeros_like(B2)
        R = B2.clone()
        Pd = R.clone()
        rs = (R * R).sum(0)
        target = rtol ** 2 * rs
        active = rs > target
        active &= rs > 0
        n_iter = torch.zeros(B2.shape[1], dtype=torch.long)
        negative = torch.zeros(B2.shape[1], dtype=torch.bool)
        for _ in range(maxiter):
            cols = torch.nonzero(active).flatten()
            if cols.numel() == 0:
                break
            p = Pd[:, cols]
            Ap = self._apply(p)
            curvature = (p * Ap).sum(0)
            bad = curvature <= 0
            if torch.any(bad):
                negative[cols[bad].cpu()] = True
                active[cols[bad]] = False
                keep = ~bad
                cols, p, Ap, curvature = cols[keep], p[:, keep], Ap[:, keep], curvature[keep]
                if cols.numel() == 0:
                    continue
            alpha = rs[cols] / curvature
            X[:, cols] += alpha * p
            R[:, cols] -= alpha * Ap
            rs_new = (R[:, cols] * R[:, cols]).sum(0)
            Pd[:, cols] = R[:, cols] + (rs_new / rs[cols]) * p
            rs[cols] = rs_new
            n_iter[cols.cpu()] += 1
            active[cols] = rs_new > target[cols]
        self.n_iter_ = n_iter.tolist()
        failed = int(active.sum()) + int(negative.sum())
        if failed:
            reason = ("met non-positive curvature (the Hessian is indefinite)"
                      if negative.any() else f"did not reach rtol={rtol:g}")
            warnings.warn(
                f"CG {reason} for {failed} of {B2.shape[1]} right-hand sides "
                f"(maxiter={maxiter}); add `damping`, raise `maxiter`, or use "
                "solver='direct'.",
                NotConvergedWarning,
                stacklevel=3,
            )
        return X[:, 0] if vec else X


def largest_eigenvalue(operator, n_iter: int = 30, random_state=None) -> float:
    """Power-iteration estimate of the largest-magnitude eigenvalue of ``H``."""
    rng = check_random_state(random_state)
    v = torch.as_tensor(rng.standard_normal(operator.n_params), dtype=operator.dtype,
                        device=operator.device)
    v = v / torch.linalg.vector_norm(v)
    value = 0.0
    for _ in range(n_iter):
        w = operator.hessp(v)
        value = float(torch.linalg.vector_norm(w))
        if value == 0:
            return 0.0
        v = w / value
    return value


class TorchLissaSolver(_TorchSolver, LissaSolver):
    """LiSSA (Agarwal et al., 2016) as in Koh & Liang, on torch tensors.

    The same recursion, parameters and defaults as
    :class:`skinfluence.solvers.LissaSolver` (its code runs on the tensors); only the
    power iteration and the null-space projection are torch's.

    Parameters
    ----------
    damping : float, default=0.0
    depth : int, default=1000
    repeats : int, default=4
    scale : float, default=None
        Must exceed the largest eigenvalue of every mini-batch Hessian; None: twice the
        largest eigenvalue of ``H + damping`` (power iteration).
    batch_size : int, default=64
    random_state : int, RandomState instance or None, default=None
    """

    __init__ = LissaSolver.__init__
    fit = LissaSolver.fit

    def _top_eigenvalue(self, operator) -> float:
        return largest_eigenvalue(operator, random_state=0)

    def solve(self, B):
        B2, vec = _as_block(B)
        op = self.operator_
        B2 = self._project(B2.to(device=op.device, dtype=op.dtype))
        estimate = self._recursion(B2, torch.clone, lambda h: float(h.abs().max()))
        estimate = self._project(estimate)
        return estimate[:, 0] if vec else estimate


class TorchArnoldiSolver(_TorchSolver):
    """Low-rank inverse from the top eigenpairs of ``H`` (Lanczos with reorthogonalization).

    A Krylov basis of ``krylov_dim`` vectors (one HVP each) gives Ritz pairs; the
    ``rank`` of largest magnitude approximate ``H``, and ``solve(B) = V diag(1 /
    (lambda + damping)) V^T B``: the part of ``B`` outside their span is dropped, as in
    Schioppa et al. (2022).  With ``rank`` equal to the number of parameters (outside
    the null space) it is exact.  Kept eigenvalues below ``min_relative_eigenvalue``
    times the largest after damping are lifted to that floor with an
    :class:`~skinfluence.exceptions.IndefiniteHessianWarning`, as the direct solver does.

    Parameters
    ----------
    damping : float, default=0.0
    rank : int, default=50
        Eigenpairs kept.
    krylov_dim : int, default=None
        Lanczos steps; ``min(n_params - null_dim, 2 * rank + 20)`` when None.
    min_relative_eigenvalue : float, default=1e-8
    random_state : int, RandomState instance or None, default=None
        Seeds the starting vector.
    """

    def __init__(self, damping=0.0, *, rank=50, krylov_dim=None, min_relative_eigenvalue=1e-8,
                 random_state=None):
        super().__init__(damping)
        self.rank = rank
        self.krylov_dim = krylov_dim
        self.min_relative_eigenvalue = min_relative_eigenvalue
        self.random_state = random_state

    def fit(self, operator) -> "TorchArnoldiSolver":
        self._null = operator.null_space()
        free_dim = operator.n_params - self._null.shape[1]
        rank = int(min(self.rank, free_dim))
        if rank < 1:
            raise ValueError(f"rank must be >= 1, got {self.rank!r}.")
        dim = self.krylov_dim if self.krylov_dim is not None else 2 * rank + 20
        dim = int(min(max(dim, rank), free_dim))
        evals, evecs = self._lanczos(operator, dim)
        order = torch.argsort(evals.abs(), descending=True)[:rank]
        evals, evecs = evals[order], evecs[:, order]
        shifted = evals + self.damping
        top = float(shifted.abs().max())
        floor = self.min_relative_eigenvalue * max(top, 1e-300)
        extra = 0.0
        if float(shifted.min()) < floor:
            extra = floor - float(shifted.min())
            warnings.warn(
                "The Hessian is singular or indefinite on its top eigenvectors (smallest "
                f"kept eigenvalue {float(evals.min()):.3g}, largest {float(evals.max()):.3g});"
                f" added damping {extra:.3g} (total {self.damping + extra:.3g} in the "
                "objective's scale). Influence values are approximate; pass a larger "
                "`damping` to control this.",
                IndefiniteHessianWarning,
                stacklevel=4,
            )
        self.damping_ = self.damping + extra
        self.eigenvalues_ = evals
        self._inv = 1.0 / (shifted + extra)
        self._evecs = evecs
        return self

    def _lanczos(self, operator, dim: int):
        rng = check_random_state(self.random_state)
        P = operator.n_params
        q = torch.as_tensor(rng.standard_normal(P), dtype=operator.dtype, device=operator.device)
        q = self._project(q[:, None])[:, 0]
        # basis stored row-wise: Q[:j] is then a contiguous block for the reorthogonalization
        Q = torch.zeros(dim, P, dtype=operator.dtype, device=operator.device)
        alphas, betas = [], []
        q = q / torch.linalg.vector_norm(q)
        for j in range(dim):
            Q[j] = q
            w = self._project(operator.hessp(q[:, None]))[:, 0]
            alpha = torch.dot(q, w)
            alphas.append(alpha)
            # full reorthogonalization (twice is enough): keeps the Ritz pairs clean
            basis = Q[:j + 1]
            for _ in range(2):
                w = self._project((w - basis.T @ (basis @ w))[:, None])[:, 0]
            beta = torch.linalg.vector_norm(w)
            if j == dim - 1 or float(beta) <= 1e-10 * max(float(alpha.abs()), 1e-300):
                Q = Q[:j + 1]
                break
            betas.append(beta)
            q = w / beta
        k = len(alphas)
        T = torch.diag(torch.stack(alphas))
        if k > 1:
            off = torch.stack(betas[:k - 1])
            T = T + torch.diag(off, 1) + torch.diag(off, -1)
        evals, U = torch.linalg.eigh(T)
        return evals, Q.T @ U

    def solve(self, B):
        B2, vec = _as_block(B)
        V = self._evecs
        out = V @ (self._inv[:, None] * (V.T @ B2.to(V)))
        out = out.to(B2.dtype)
        return out[:, 0] if vec else out


TORCH_SOLVERS = {
    "direct": TorchDirectSolver,
    "cg": TorchCGSolver,
    "lissa": TorchLissaSolver,
    "arnoldi": TorchArnoldiSolver,
}


def make_torch_solver(name: str, damping: float = 0.0, **options) -> _TorchSolver:
    """Instantiate a torch solver by name (``"direct"``, ``"cg"``, ``"lissa"``, ``"arnoldi"``)."""
    try:
        cls = TORCH_SOLVERS[name]
    except KeyError:
        raise ValueError(
            f"Unknown solver {name!r}; expected one of {sorted(TORCH_SOLVERS)} or 'auto'."
        ) from None
    return cls(damping, **options)
