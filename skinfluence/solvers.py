"""Inverse-Hessian-vector products for blocks of right-hand sides.

Solvers know nothing of scikit-learn.  They work on a *Hessian operator*: any object
with

- ``n_params`` and ``n_samples`` (ints),
- ``hessp(V)`` -> ``H @ V`` for ``V`` of shape (n_params, m),
- ``null_space()`` -> (n_params, r) orthonormal basis of exact null directions that
  no right-hand side ever touches (may have ``r = 0``),

and, for the solvers that need them, ``hessian()`` (dense matrix, ``"direct"``),
``hessian_diagonal()`` (Jacobi preconditioner, ``"cg"``) and
``hessp(V, index=rows, data_scale=c)`` (a mini-batch Hessian, ``"lissa"``).
:class:`skinfluence.objective.GLMObjective` is one.

Every solver adds ``damping`` to the diagonal of ``H`` (in the operator's own scale)
and works in the complement of the null space, so that the result equals the
pseudo-inverse there: ``solve(B) = (H + damping I)^+ B`` for ``B`` orthogonal to it.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.linalg import blas
from sklearn.utils import check_random_state

from ._parallel import held_bytes, map_chunks, realigned_state
from .exceptions import IndefiniteHessianWarning, NotConvergedWarning

__all__ = [
    "DirectSolver",
    "CGSolver",
    "LissaSolver",
    "WoodburySolver",
    "make_solver",
    "SOLVERS",
]


def _null_projector_scale(hess_diag: np.ndarray) -> float:
    """A harmless eigenvalue to give the null directions (the mean curvature)."""
    scale = float(np.mean(np.abs(hess_diag))) if hess_diag.size else 1.0
    return scale if scale > 0 else 1.0


class _Solver:
    """Common bits: damping, the null-space term, column-block helpers."""

    def __init__(self, damping: float = 0.0):
        if not damping >= 0:
            raise ValueError(f"damping must be >= 0, got {damping!r}.")
        self.damping = float(damping)

    def fit(self, operator) -> "_Solver":
        raise NotImplementedError

    def __sizeof__(self) -> int:
        # lets joblib's dask backend broadcast a fitted solver instead of re-sending it
        return object.__sizeof__(self) + held_bytes(self.__dict__)

    def __setstate__(self, state):
        self.__dict__.update(realigned_state(state))

    def solve(self, B: np.ndarray) -> np.ndarray:
        """``(H + damping I)^-1 B`` for ``B`` of shape (n_params, m) or (n_params,)."""
        raise NotImplementedError

    def quadratic_forms(self, B: np.ndarray) -> np.ndarray:
        """``diag(B.T H^-1 B)`` for ``B`` of shape (n_params, m)."""
        return np.einsum("ij,ij->j", B, self.solve(B))

    def bilinear_blocks(self, B: np.ndarray, block: int) -> np.ndarray:
        """The ``block x block`` diagonal blocks of ``B.T H^-1 B``.

        ``B`` has ``m * block`` columns; returns (m, block, block).
        """
        m = B.shape[1] // block
        HB = self.solve(B)
        Bb = B.reshape(B.shape[0], m, block)
        return np.einsum("pmk,pml->mkl", Bb, HB.reshape(B.shape[0], m, block))


class DirectSolver(_Solver):
    """Dense factorization of ``H``: Cholesky, or a damped eigendecomposition.

    When Cholesky fails or ``H`` is numerically singular outside its known null
    space, the solver eigendecomposes ``H`` and adds damping, warning with the amount
    (:class:`~skinfluence.exceptions.IndefiniteHessianWarning`): a singular but
    positive semi-definite ``H`` has its smallest eigenvalue lifted to
    ``min_relative_eigenvalue * largest``; an indefinite one (negative curvature, a
    non-convex model) is shifted by twice its most negative eigenvalue, so that the
    smallest becomes ``|lambda_min|``.  Pass ``damping`` to choose it yourself.

    Parameters
    ----------
    damping : float, default=0.0
        Added to the diagonal of ``H``.
    min_relative_eigenvalue : float, default=1e-8
        Smallest eigenvalue accepted without extra damping, relative to the largest.

    Attributes
    ----------
    damping_ : float
        Total damping used (``damping`` plus any that was added automatically).
    min_eigenvalue_ : float or None
        Smallest eigenvalue of the undamped ``H`` when it had to be computed.
    """

    def __init__(self, damping: float = 0.0, *, min_relative_eigenvalue: float = 1e-8):
        super().__init__(damping)
        self.min_relative_eigenvalue = min_relative_eigenvalue

    def fit(self, operator) -> "DirectSolver":
        hess = np.array(operator.hessian(), dtype=np.float64)
        return self.fit_matrix(hess, operator.null_space())

    def fit_matrix(self, hess: np.ndarray, null_basis: np.ndarray | None = None) -> "DirectSolver":
        """Factor an explicit Hessian (modified in place)."""
        if null_basis is not None and null_basis.size:
            rho = _null_projector_scale(np.diag(hess))
            hess += rho * null_basis @ null_basis.T
        hess[np.diag_indices_from(hess)] += self.damping
        self.damping_ = self.damping
        self.min_eigenvalue_ = None
        self._eig = None
        diag = np.diag(hess)
        try:
            if not np.all(np.isfinite(hess)):
                raise np.linalg.LinAlgError("non-finite Hessian")
            chol, lower = scipy.linalg.cho_factor(hess, lower=True, check_finite=False)
            pivots = np.diag(chol) ** 2
            # a tiny pivot means a (numerically) singular H: go through eigh instead
            if pivots.min() <= self.min_relative_eigenvalue * max(diag.max(), 1e-300):
                raise np.linalg.LinAlgError("numerically singular Hessian")
            self._chol = (chol, lower)
        except np.linalg.LinAlgError:
            self._chol = None
            self._fit_eigh(hess)
        return self

    def _fit_eigh(self, hess: np.ndarray) -> None:
        if not np.all(np.isfinite(hess)):
            raise ValueError(
                "The Hessian contains NaN or inf; check the fitted coefficients and X."
            )
        evals, evecs = scipy.linalg.eigh(hess, check_finite=False)
        top = max(abs(evals[-1]), 1e-300)
        floor = self.min_relative_eigenvalue * top
        self.min_eigenvalue_ = float(evals[0] - self.damping)
        extra = 0.0
        if evals[0] < -floor:
            # truly negative curvature (a non-convex model): lifting it to a hair above
            # zero would make H^-1 explode along it; mirror it instead, so the smallest
            # eigenvalue becomes |lambda_min| (Koh & Liang damp such Hessians too)
            extra = -2.0 * evals[0]
        elif evals[0] < floor:
            # singular but PSD (collinear columns, no penalty): gradients have no
            # component along the null directions, so a tiny lift is exact enough
            extra = floor - evals[0]
        if extra > 0:
            warnings.warn(
                "The Hessian is singular or indefinite (smallest eigenvalue "
                f"{evals[0] - self.damping:.3g}, largest {evals[-1] - self.damping:.3g}); "
                f"added damping {extra:.3g} to its diagonal (total {self.damping + extra:.3g}"
                " in the objective's scale). Influence values are approximate; pass a larger "
                "`damping` to control this.",
                IndefiniteHessianWarning,
                stacklevel=4,
            )
        self.damping_ = self.damping + extra
        self._eig = (evals + extra, evecs)

    def solve(self, B):
        B = np.asarray(B, dtype=np.float64)
        if self._chol is not None:
            return scipy.linalg.cho_solve(self._chol, B, check_finite=False)
        evals, evecs = self._eig
        proj = evecs.T @ B
        proj /= evals[:, None] if proj.ndim == 2 else evals
        return evecs @ proj

    def whiten(self, B: np.ndarray) -> np.ndarray:
        """``W @ B`` with ``W.T @ W = H^-1`` (so quadratic forms are squared norms)."""
        B = np.asarray(B, dtype=np.float64)
        if self._chol is not None:
            return scipy.linalg.solve_triangular(
                self._chol[0], B, lower=True, check_finite=False
            )
        evals, evecs = self._eig
        proj = evecs.T @ B
        return proj / (np.sqrt(evals)[:, None] if proj.ndim == 2 else np.sqrt(evals))

    def quadratic_forms(self, B):
        W = self.whiten(B)
        return np.einsum("ij,ij->j", W, W)

    def bilinear_blocks(self, B, block):
        W = self.whiten(B)
        m = B.shape[1] // block
        Wb = W.reshape(W.shape[0], m, block)
        return np.einsum("pmk,pml->mkl", Wb, Wb)


class CGSolver(_Solver):
    """Conjugate gradients (:func:`scipy.sparse.linalg.cg`) on a ``LinearOperator``.

    ``H`` is never formed: each iteration costs one Hessian-vector product, i.e. two
    passes over ``X``.  Columns of a block are solved independently, in parallel with
    ``n_jobs`` (threads: the products release the GIL; or the workers of an active
    joblib backend), each with the same arithmetic as a serial solve.

    Parameters
    ----------
    damping : float, default=0.0
    rtol : float, default=1e-8
        Relative residual tolerance ``||H x - b|| <= rtol ||b||``.
    maxiter : int, default=None
        Iteration cap per column (scipy's default: ``10 * n_params``).
    preconditioner : {"jacobi", None}, default="jacobi"
        Diagonal preconditioning from ``operator.hessian_diagonal()``.
    n_jobs : int, default=None
        Columns solved in parallel.
    """

    def __init__(self, damping=0.0, *, rtol=1e-8, maxiter=None, preconditioner="jacobi",
                 n_jobs=None):
        super().__init__(damping)
        self.rtol = rtol
        self.maxiter = maxiter
        self.preconditioner = preconditioner
        self.n_jobs = n_jobs

    def fit(self, operator) -> "CGSolver":
        self.operator_ = operator
        self.damping_ = self.damping
        null = operator.null_space()
        diag = None
        if self.preconditioner == "jacobi" or null.size:
            diag = np.asarray(operator.hessian_diagonal(), dtype=np.float64) + self.damping
        rho = _null_projector_scale(diag) if null.size else 0.0
        inv = None
        if self.preconditioner == "jacobi":
            if null.size:
                diag = diag + rho * np.einsum("ij,ij->i", null, null)
            inv = 1.0 / np.where(diag > 0, diag, 1.0)
        elif self.preconditioner is not None:
            raise ValueError(f"Unknown preconditioner {self.preconditioner!r}.")
        self._null, self._rho, self._inv = null, rho, inv
        self._build_operators()
        self.n_iter_ = []
        return self

    def _build_operators(self) -> None:
        """scipy's operators for ``H + damping`` and the preconditioner, from plain state."""
        operator, null, rho, inv = self.operator_, self._null, self._rho, self._inv
        n_params = operator.n_params
        damping = self.damping

        def matvec(v):
            out = operator.hessp(v.reshape(n_params, -1))
            if null.size:
                out += rho * null @ (null.T @ v.reshape(n_params, -1))
            out += damping * v.reshape(n_params, -1)
            return out.reshape(v.shape)

        self._A = spla.LinearOperator((n_params, n_params), matvec=matvec, matmat=matvec,
                                      dtype=np.float64)
        self._M = None
        if inv is not None:
            self._M = spla.LinearOperator(
                (n_params, n_params), matvec=lambda v: inv.reshape(-1, *[1] * (v.ndim - 1)) * v,
                dtype=np.float64)

    def __getstate__(self):
        # scipy's operators are closures over this state: rebuilt after unpickling
        state = dict(self.__dict__)
        state.pop("_A", None)
        state.pop("_M", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if hasattr(self, "operator_"):
            self._build_operators()

    def _solve_column(self, b):
        b = np.ascontiguousarray(b, dtype=np.float64)
        if not np.any(b):
            return np.zeros_like(b), 0, 0
        count = [0]

        def callback(_):
            count[0] += 1

        x, info = spla.cg(self._A, b, rtol=self.rtol, atol=0.0, maxiter=self.maxiter,
                          M=self._M, callback=callback)
        return x, info, count[0]

    def solve(self, B):
        B = np.asarray(B, dtype=np.float64)
        vec = B.ndim == 1
        B2 = B[:, None] if vec else B
        results = list(map_chunks(_cg_column, self, [B2[:, j] for j in range(B2.shape[1])],
                                  n_jobs=self.n_jobs))
        X = np.column_stack([r[0] for r in results]) if results else np.zeros_like(B2)
        failed = [j for j, r in enumerate(results) if r[1] != 0]
        self.n_iter_ = [r[2] for r in results]
        if failed:
            warnings.warn(
                f"CG did not reach rtol={self.rtol:g} for {len(failed)} of {B2.shape[1]} "
                f"right-hand sides (maxiter={self.maxiter}); the Hessian may be singular or "
                "badly conditioned: add `damping`, raise `maxiter`, or use solver='direct'.",
                NotConvergedWarning,
                stacklevel=3,
            )
        return X[:, 0] if vec else X


def _cg_column(solver: CGSolver, b: np.ndarray):
    return solver._solve_column(b)


class LissaSolver(_Solver):
    """The stochastic recursion of Agarwal et al. (2016), as used by Koh & Liang.

    ``h_0 = b``, ``h_j = b + (I - (H_j + damping I) / scale) h_{j-1}`` with ``H_j`` a
    mini-batch estimate of ``H``; ``h_depth / scale`` estimates ``(H + damping I)^-1 b``
    and ``repeats`` independent runs are averaged.  It converges when ``scale`` exceeds
    the largest eigenvalue of every mini-batch Hessian and ``depth`` is several times
    ``scale / smallest eigenvalue``.

    Parameters
    ----------
    damping : float, default=0.0
    depth : int, default=1000
        Recursion depth ``t``.
    repeats : int, default=4
        Independent runs averaged ``r``.
    scale : float, default=None
        Must exceed the largest eigenvalue of the mini-batch Hessians.  None: twice the
        largest eigenvalue of ``H`` estimated by power iteration.
    batch_size : int, default=64
        Rows per mini-batch Hessian.
    random_state : int, RandomState instance or None, default=None
    """

    def __init__(self, damping=0.0, *, depth=1000, repeats=4, scale=None, batch_size=64,
                 random_state=None):
        super().__init__(damping)
        self.depth = depth
        self.repeats = repeats
        self.scale = scale
        self.batch_size = batch_size
        self.random_state = random_state

    def fit(self, operator) -> "LissaSolver":
        self.operator_ = operator
        self.damping_ = self.damping
        self._null = operator.null_space()
        if self.scale is None:
            self.scale_ = 2.0 * (self._top_eigenvalue(operator) + self.damping)
        else:
            self.scale_ = float(self.scale)
        # one seed for every solve: results independent of call order and chunking
        self.seed_ = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        return self

    def _top_eigenvalue(self, operator) -> float:
        return largest_eigenvalue(operator, random_state=0)

    def solve(self, B):
        B = np.asarray(B, dtype=np.float64)
        vec = B.ndim == 1
        B2 = B[:, None] if vec else B
        estimate = self._recursion(B2, np.copy, lambda h: float(np.max(np.abs(h))))
        if self._null.size:
            estimate -= self._null @ (self._null.T @ estimate)
        return estimate[:, 0] if vec else estimate

    def _recursion(self, B2, copy, max_abs):
        """The averaged recursion on a block; written once for numpy and torch arrays.

        ``copy`` and ``max_abs`` are the only array-library operations it needs.
        """
        op = self.operator_
        n = op.n_samples
        batch = min(self.batch_size, n)
        bound = 1e6 * max(max_abs(B2) if B2.shape[1] else 0.0, 1e-300) * self.depth
        estimate = 0.0 * B2
        # the same mini-batches for every call (seed_ is fixed at fit): a column's result
        # does not depend on the columns solved with it, nor on call order or threads
        rng = np.random.RandomState(self.seed_)
        for _ in range(self.repeats):
            h = copy(B2)
            for step in range(self.depth):
                if batch == n:
                    Hh = op.hessp(h)
                else:
                    rows = rng.choice(n, size=batch, replace=False)
                    Hh = op.hessp(h, index=rows, data_scale=n / batch)
                h = B2 + h - (Hh + self.damping * h) / self.scale_
                if step % 16 == 15 or step == self.depth - 1:
                    # a diverging recursion grows geometrically: stop before it overflows
                    size = max_abs(h) if h.shape[1] else 0.0
                    if not size <= bound:  # also catches NaN
                        raise FloatingPointError(
                            f"LiSSA diverged (scale={self.scale_:.3g}, batch_size={batch}): "
                            "pass a larger `scale` or `batch_size`, or use solver='cg'."
                        )
            estimate = estimate + h / self.scale_
        return estimate / self.repeats


class WoodburySolver(_Solver):
    """Exact solves for ``H = diag(lam) + X~.T diag(w) X~`` through the n x n dual.

    When there are fewer rows than parameters (bag-of-words, kernel maps), the
    Woodbury identity replaces the p x p factorization by an n x n one:
    ``(Lam + A.T A)^-1 = Lam^-1 - Lam^-1 A.T C^-1 A Lam^-1`` with ``A = diag(sqrt(w)) X~``
    and ``C = I + A Lam^-1 A.T``.  Unpenalized columns (the intercept) are eliminated
    exactly through their Schur complement ``S = A_b.T C^-1 A_b``.  The training rows'
    leverages ``x~_i.T H^-1 x~_i`` (self-influence, Newton leave-one-out) then cost one
    triangular inverse instead of ``n`` solves (:meth:`leverage`).

    Requires a single-output objective (``operator.n_outputs == 1``) exposing
    ``design``, ``curvature``, ``sample_weight`` and ``penalty``.
    """

    def fit(self, operator) -> "WoodburySolver":
        if getattr(operator, "n_outputs", None) != 1:
            raise ValueError("WoodburySolver needs a single-output objective.")
        design = operator.design
        weights = operator.curvature[:, 0, 0] * operator.sample_weight
        if np.any(weights < 0):
            raise ValueError("WoodburySolver needs non-negative curvature.")
        lam = np.asarray(operator.penalty, dtype=np.float64) + self.damping
        self.damping_ = self.damping
        free = lam == 0
        if free.sum() > max(design.n_samples // 2, 1):
            raise ValueError("Too many unpenalized parameters for the dual solve.")
        self._design, self._lam, self._free = design, lam, free
        self._sqrt_w = np.sqrt(weights)
        # K0 = X~_pen Lam^-1 X~_pen.T: the kernel of the penalized coordinates
        self._kernel = _penalized_kernel(design, np.where(free, 0.0, 1.0 / np.where(free, 1, lam)))
        core = self._kernel * self._sqrt_w[:, None]  # one n x n temporary, scaled in place
        core *= self._sqrt_w[None, :]
        core[np.diag_indices_from(core)] += 1.0
        self._chol = scipy.linalg.cholesky(core, lower=True, overwrite_a=True, check_finite=False)
        del core
        self._A_free = self._sqrt_w[:, None] * _dense_columns(design, np.flatnonzero(free))
        if free.any():
            self._C_A_free = self._cho_solve(self._A_free)
            self._schur = self._factor_schur(self._A_free.T @ self._C_A_free, lam)
        return self

    def _factor_schur(self, schur: np.ndarray, lam: np.ndarray):
        """Cholesky of the unpenalized block's Schur complement, damped if singular.

        It is singular when the unpenalized columns (the intercept) carry no curvature,
        e.g. a smooth hinge at small ``t`` where almost no row sits near the margin.
        """
        evals = np.linalg.eigvalsh(schur)
        floor = 1e-8 * max(evals[-1], lam.max(), 1e-300)
        if evals[0] < floor:
            extra = floor - evals[0]
            warnings.warn(
                f"The Hessian is singular along the unpenalized parameters (smallest "
                f"eigenvalue of their Schur complement {evals[0]:.3g}); added damping "
                f"{extra:.3g} to them. Influence values are approximate; pass a larger "
                "`damping` to control this.",
                IndefiniteHessianWarning,
                stacklevel=4,
            )
            schur = schur + extra * np.eye(schur.shape[0])
            self.damping_ = self.damping + extra
        return scipy.linalg.cho_factor(schur, lower=True, check_finite=False)

    def _cho_solve(self, B):
        return scipy.linalg.cho_solve((self._chol, True), B, check_finite=False)

    def _A_pen(self, V):
        """``A_pen @ V`` for ``V`` over penalized coordinates (zeros elsewhere)."""
        return self._sqrt_w[:, None] * self._design.dot(V)

    def _A_pen_T(self, Q):
        out = self._design.tdot(self._sqrt_w[:, None] * Q)
        out[self._free] = 0.0
        return out

    def solve(self, B):
        B = np.asarray(B, dtype=np.float64)
        vec = B.ndim == 1
        B2 = B[:, None] if vec else B
        free, lam = self._free, np.where(self._free, 1.0, self._lam)[:, None]
        b_pen = np.where(free[:, None], 0.0, B2) / lam
        u = self._A_pen(b_pen)
        out = np.empty_like(B2)
        if free.any():
            x_free = scipy.linalg.cho_solve(
                self._schur, B2[free] - self._C_A_free.T @ u, check_finite=False)
            shift = self._A_free @ x_free
            z = u - self._A_pen(self._A_pen_T(shift) / lam)
            out[free] = x_free
        else:
            shift, z = 0.0, u
        corr = shift + self._cho_solve(z)
        out[~free] = (B2 - self._A_pen_T(corr))[~free] / lam[~free]
        return out[:, 0] if vec else out

    def leverage(self) -> np.ndarray:
        """``x~_i.T H^-1 x~_i`` for every training row, shape (n_samples,).

        ``X~ H^-1 X~.T = K0 - U.T C^-1 U + E S^-1 E.T`` with ``U = W^1/2 K0`` and
        ``E = X~_b - U.T C^-1 A_b``.  For a row with curvature ``w_i`` the first two terms
        reduce to ``(1 - [C^-1]_ii) / w_i``, read off the triangular inverse; rows with
        tiny ``w_i K0_ii`` (where that form would lose digits) are solved directly.
        """
        n = self._kernel.shape[0]
        w = self._sqrt_w**2
        chol_inv = scipy.linalg.lapack.dtrtri(self._chol, lower=1)[0]
        c_inv_diag = np.einsum("ij,ij->j", chol_inv, chol_inv)
        del chol_inv
        k_diag = np.diag(self._kernel).copy()
        stable = w * k_diag > 1e-6
        lev = np.empty(n)
        lev[stable] = (1.0 - c_inv_diag[stable]) / w[stable]
        small = np.flatnonzero(~stable)
        for start in range(0, small.size, 512):
            cols = small[start:start + 512]
            U = self._sqrt_w[:, None] * self._kernel[:, cols]
            half = scipy.linalg.solve_triangular(self._chol, U, lower=True, check_finite=False)
            lev[cols] = k_diag[cols] - np.einsum("ij,ij->j", half, half)
        if self._free.any():
            X_free = _dense_columns(self._design, np.flatnonzero(self._free))
            E = X_free - self._kernel @ (self._sqrt_w[:, None] * self._C_A_free)
            ES = scipy.linalg.cho_solve(self._schur, E.T, check_finite=False).T
            lev += np.einsum("ij,ij->i", E, ES)
        return lev


def _dense_columns(design, cols) -> np.ndarray:
    """Columns of ``X~`` (the intercept column included) as a dense (n, len(cols)) array."""
    out = np.empty((design.n_samples, len(cols)))
    d = design.n_features
    for j, col in enumerate(cols):
        if col == d:
            out[:, j] = design.intercept_scaling
        else:
            column = design.X[:, col]
            out[:, j] = column.toarray().ravel() if design.sparse else np.asarray(column)
    return out


def _penalized_kernel(design, col_scale: np.ndarray, block: int = 512) -> np.ndarray:
    """``X~ diag(col_scale) X~.T`` (n x n).

    Dense columns go through ``syrk`` in blocks.  For sparse ``X`` only the frequent
    columns do: a column with ``c`` non-zeros adds ``c^2`` products to a sparse
    ``X X^T`` but ``n^2 / 2`` to a dense rank-k update, and sparse products run an
    order of magnitude below BLAS speed, so columns in more than ``n / 8`` rows (the
    "stop words" of a bag of words) are densified and the rest multiplied sparsely.
    """
    n, d = design.n_samples, design.n_features
    kernel = np.zeros((n, n))
    X = design.X.tocsc() if design.sparse else design.X
    active = np.flatnonzero(col_scale[:d])
    if design.sparse:
        counts = np.diff(X.indptr)[active]
        rare, active = active[counts <= n / 8], active[counts > n / 8]
    for start in range(0, len(active), block):
        cols = active[start:start + block]
        part = X[:, cols]
        part = part.toarray() if design.sparse else np.asarray(part, dtype=np.float64)
        scaled = np.asfortranarray((part * np.sqrt(col_scale[cols])[None, :]).T)
        kernel = blas.dsyrk(1.0, scaled, beta=1.0, c=kernel, trans=1, lower=1, overwrite_c=1)
    _mirror_lower(kernel)  # syrk filled the lower triangle only
    if design.sparse and len(rare):
        _add_sparse_kernel(kernel, X[:, rare] @ sp.diags(np.sqrt(col_scale[rare])))
    if design.fit_intercept and col_scale[d] > 0:
        kernel += col_scale[d] * design.intercept_scaling**2
    return kernel


def _add_sparse_kernel(kernel: np.ndarray, scaled, block: int = 2048) -> None:
    """``kernel += scaled @ scaled.T`` for sparse ``scaled``, a block of rows at a time
    (the sparse product of all rows at once could hold more entries than the kernel)."""
    rows, cols_t = scaled.tocsr(), scaled.T.tocsr()
    for start in range(0, rows.shape[0], block):
        kernel[start:start + block] += (rows[start:start + block] @ cols_t).toarray()


def _mirror_lower(a: np.ndarray, block: int = 256) -> None:
    """Copy the strict lower triangle of square ``a`` onto the upper one, in place.

    Tile by tile: ``np.tril(a, -1).T`` strides across the whole matrix and costs
    several times more than the tiles (0.75 s against ~0.05 s at n = 4,000).
    """
    n = a.shape[0]
    for i in range(0, n, block):
        rows = slice(i, min(i + block, n))
        tile = a[rows, rows]
        upper = np.triu_indices(tile.shape[0], 1)
        tile[upper] = tile.T[upper]
        for j in range(i + block, n, block):
            cols = slice(j, min(j + block, n))
            a[rows, cols] = a[cols, rows].T


def largest_eigenvalue(operator, n_iter: int = 30, random_state=None) -> float:
    """Power-iteration estimate of the largest eigenvalue of a PSD operator."""
    rng = check_random_state(random_state)
    v = rng.standard_normal(operator.n_params)
    v /= np.linalg.norm(v)
    value = 0.0
    for _ in range(n_iter):
        w = operator.hessp(v[:, None])[:, 0]
        value = float(np.linalg.norm(w))
        if value == 0:
            return 0.0
        v = w / value
    return value


SOLVERS = {
    "direct": DirectSolver,
    "cg": CGSolver,
    "lissa": LissaSolver,
    "woodbury": WoodburySolver,
}


def make_solver(name: str, damping: float = 0.0, **options) -> _Solver:
    """Instantiate a solver by name (``"direct"``, ``"cg"``, ``"lissa"``, ``"woodbury"``)."""
    try:
        cls = SOLVERS[name]
    except KeyError:
        raise ValueError(
            f"Unknown solver {name!r}; expected one of {sorted(SOLVERS)} or 'auto'."
        ) from None
    return cls(damping, **options)
