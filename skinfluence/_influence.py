"""The influence engine: every quantity of Koh & Liang from one fitted objective.

Conventions (the same for every estimator, documented in the user guide):

- ``J`` is the estimator's own objective (:mod:`skinfluence.objective`), ``H`` its
  Hessian at the fit, ``g_i`` the unweighted loss gradient of training row ``i``,
  ``s_i`` its sample weight and ``n`` the number of training rows.
- ``influence(X_test, y_test)[i, t] = -n * s_i * g_t^T H^-1 g_i``: Koh & Liang's
  ``I_up,loss(z_i, z_t)`` for ``R = J / n``.  Positive means *harmful*: up-weighting
  the row increases the test loss.
- ``loo_effect(...)[i, t]``: predicted change of the test loss when row ``i`` is
  removed and the model refitted.  ``method="influence"`` is ``-influence / n``;
  ``method="newton"`` takes one exact Newton step of the objective without the row
  (a rank-``K`` Woodbury update through the row's leverage) and evaluates the test
  loss there.
"""

from __future__ import annotations

import functools
import numbers
import os
import threading
import warnings

import numpy as np
from sklearn import config_context, get_config

from ._parallel import held_bytes, map_chunks, realigned_state
from .exceptions import NotConvergedWarning
from .objective import GLMObjective, LinearDesign, outer_gradients, row_slices, rows_per_chunk
from .solvers import make_solver

__all__ = ["Influence"]

_METHODS = ("influence", "newton")
_KINDS = ("harmful", "helpful", "influential", "self")
#: results larger than this are refused up front (they would not fit a typical machine)
MAX_RESULT_BYTES = 8 * 2**30
#: most training rows in one chunk: the unit of parallel (and distributed) work
MAX_CHUNK_ROWS = 2**17
#: most test points in one chunk
MAX_TEST_CHUNK = 256
#: a dense factorization needs about this many copies of the matrix at once
_DENSE_COPIES = 3


def available_memory_bytes() -> float | None:
    """Memory this machine can still give (MemAvailable on Linux), None when unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return None


def _within_budget(method):
    """Run a public method with the engine's ``working_memory`` as sklearn's budget.

    The objective's passes over ``X`` (and tasks on other workers: scikit-learn's
    joblib helpers carry the configuration along) then use the same chunk budget.
    """

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if self.working_memory is None:
            return method(self, *args, **kwargs)
        with config_context(working_memory=self.working_memory):
            return method(self, *args, **kwargs)

    return wrapper


def _row_task(engine, index, method: str, *args):
    """One chunk of training rows, run wherever joblib puts it."""
    try:
        return getattr(engine, method)(index, *args)
    finally:
        engine.objective.design.release(index)


def _test_task(engine, test_slice, method: str, *args):
    """One chunk of test points, run wherever joblib puts it."""
    return getattr(engine, method)(test_slice, *args)


def _check_method(method: str) -> str:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}.")
    return method


class Influence:
    """Influence functions of a fitted objective (Koh & Liang, 2017).

    Most users get one through an estimator's methods or :func:`skinfluence.explain`;
    build one directly to explain an objective of your own.

    Parameters
    ----------
    objective : GLMObjective
        The estimator's objective at its fit, with its training data.
    solver : {"auto", "direct", "cg", "lissa", "woodbury"}, default="auto"
        Inverse-Hessian-vector products.  ``"auto"`` picks ``"woodbury"`` for a
        single-output model with fewer rows than parameters, ``"direct"`` when the
        dense Hessian fits in ``working_memory`` and ``"cg"`` otherwise.
    damping : float, default=0.0
        Added to the Hessian of the mean objective ``R = J / n`` (``n * damping`` on
        the Hessian of ``J``), the paper's damping for non-convex or unconverged fits.
    solver_options : dict, default=None
        Passed to the solver (e.g. ``rtol``/``maxiter`` for CG, ``depth``/``repeats``/
        ``scale``/``batch_size`` for LiSSA).
    n_jobs : int, default=None
        Parallel jobs over chunks of training rows or test points (joblib: threads
        unless a ``joblib.parallel_config``/``parallel_backend`` context selects
        another backend, e.g. ``"dask"``; None follows that context).  Chunk
        boundaries never depend on ``n_jobs`` or the backend, so results are the same
        bit for bit.
    working_memory : float, default=None
        MiB for the intermediate arrays of one chunk (scikit-learn's
        ``working_memory`` when None; see "Scaling out" in the user guide).
    convergence_tol : float, default=1e-3
        Warn when ``max|grad J| / sum(s)`` at the fit exceeds this (the fit is not a
        stationary point, which influence assumes).
    random_state : int, RandomState instance or None, default=None
        Seeds LiSSA.

    Attributes
    ----------
    solver_ : object
        The fitted inverse-HVP solver (its ``damping_`` is in ``J``'s scale).
    diagnostics_ : dict
        ``gradient_norm`` (``max|grad J| / sum(s)``), ``solver``, ``damping`` (mean
        scale, including any added automatically), ``n_params``.
    """

    def __init__(
        self,
        objective: GLMObjective,
        *,
        solver: str = "auto",
        damping: float = 0.0,
        solver_options: dict | None = None,
        n_jobs: int | None = None,
        working_memory: float | None = None,
        convergence_tol: float = 1e-3,
        random_state=None,
    ):
        self.objective = objective
        self.solver = solver
        self.damping = damping
        self.solver_options = solver_options
        self.n_jobs = n_jobs
        self.working_memory = working_memory
        self.convergence_tol = convergence_tol
        self.random_state = random_state
        self._lock = threading.RLock()

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(realigned_state(state))
        self._lock = threading.RLock()

    def __sizeof__(self) -> int:
        # what shipping the engine to a worker costs: joblib's dask backend broadcasts
        # arguments it considers large once, instead of pickling them into every task
        return object.__sizeof__(self) + held_bytes(self.__dict__)

    # ------------------------------------------------------------------ set-up
    @property
    def n_train(self) -> int:
        return self.objective.n_samples

    def _working_bytes(self) -> float:
        wm = self.working_memory
        if wm is None:
            wm = get_config()["working_memory"]
        return float(wm) * 2**20

    def _choose_solver(self) -> str:
        obj = self.objective
        if self.solver != "auto":
            return self.solver
        n, P = obj.n_samples, obj.n_params
        budget = self._working_bytes()
        n_free = int(np.sum(obj.penalty + self.damping == 0))
        # a kernel map has about as many parameters as rows: the n x n dual saves nothing
        dual_pays = not getattr(obj, "prefers_primal_solve", False)
        if (dual_pays and obj.n_outputs == 1 and n < P and 8.0 * n * n <= budget
                and n_free <= n // 2):
            return "woodbury"
        if 8.0 * P * P <= budget:
            return "direct"
        return "cg"

    def _check_dense_fits(self, name: str) -> None:
        """Refuse a dense factorization that cannot fit, before any pass over the data."""
        obj = self.objective
        if name == "direct":
            size, what = obj.n_params, "Hessian"
        elif name == "woodbury":
            size, what = obj.n_samples, "n_samples x n_samples dual matrix"
        else:
            return
        need = _DENSE_COPIES * 8.0 * size * size
        available = available_memory_bytes()
        if available is not None and need > available:
            raise MemoryError(
                f"solver={name!r} needs a dense {size} x {size} {what} (about "
                f"{need / 2**30:.1f} GiB with its factorization) but this machine has "
                f"{available / 2**30:.1f} GiB available; use solver='cg' (solver='auto' "
                "picks it) or solver='lissa'."
            )

    @_within_budget
    def fit(self) -> "Influence":
        """Check the fit and factor (or prepare) the Hessian; called lazily."""
        obj = self.objective
        if not self.damping >= 0:
            raise ValueError(f"damping must be >= 0, got {self.damping!r}.")
        name = self._choose_solver()
        if name not in ("direct", "cg", "lissa", "woodbury"):
            make_solver(name)  # raises the unknown-solver error before any work
        self._check_dense_fits(name)
        diagnostics = self._check_stationary()
        options = dict(self.solver_options or {})
        if name == "lissa":
            options.setdefault("random_state", self.random_state)
        if name == "cg":
            options.setdefault("n_jobs", self.n_jobs)
        solver = make_solver(name, damping=self.damping * obj.n_samples, **options).fit(obj)
        diagnostics.update(
            solver=name,
            damping=getattr(solver, "damping_", solver.damping) / obj.n_samples,
            n_params=obj.n_params,
        )
        self.diagnostics_ = diagnostics
        self._leverage_all = None
        self.solver_ = solver  # last: other threads take a set solver_ as "fitted"
        return self

    def _check_stationary(self) -> dict:
        obj = self.objective
        grad = obj.gradient()
        null = obj.null_space()
        if null.size:
            grad = grad - null @ (null.T @ grad)
        norm = float(np.max(np.abs(grad), initial=0.0)) / max(
            float(obj.sample_weight.sum()), 1e-300)
        if not np.isfinite(norm):
            raise ValueError("The objective's gradient at the fit is not finite.")
        if norm > self.convergence_tol:
            warnings.warn(
                f"The fitted parameters are not a stationary point of the training "
                f"objective: max|grad| / sum(sample_weight) = {norm:.3g} > "
                f"{self.convergence_tol:g}. Influence assumes a minimum; refit with a "
                "smaller `tol` or larger `max_iter`, or add `damping`.",
                NotConvergedWarning,
                stacklevel=5,
            )
        return {"gradient_norm": norm}

    def _ensure_fitted(self) -> None:
        if not hasattr(self, "solver_"):
            with self._lock:  # two threads asking at once fit once
                if not hasattr(self, "solver_"):
                    self.fit()

    # ------------------------------------------------------------------ helpers
    def _rows(self, train_indices) -> np.ndarray | slice:
        if train_indices is None:
            return slice(None)
        idx = np.asarray(train_indices)
        if idx.dtype == bool:
            if idx.shape != (self.n_train,):
                raise ValueError(
                    f"boolean train_indices must have shape ({self.n_train},), got {idx.shape}."
                )
            return np.flatnonzero(idx)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise ValueError(
                "train_indices must be a 1-d array of integer row indices (or a boolean "
                f"mask), got an array of dtype {idx.dtype} and shape {idx.shape}."
            )
        if idx.size == 0:
            return np.empty(0, dtype=np.intp)
        if idx.size and (idx.min() < -self.n_train or idx.max() >= self.n_train):
            raise ValueError(
                f"train_indices out of range for {self.n_train} training rows."
            )
        return idx % self.n_train

    def _row_chunks(self, rows, row_bytes: float) -> list[tuple[slice, np.ndarray | slice]]:
        """(output slice, training-row index) pairs under the working-memory budget.

        The boundaries depend only on the rows, ``row_bytes`` and the budget: never on
        ``n_jobs`` or the backend, so that every run computes the same chunks.
        """
        n_rows = self.n_train if isinstance(rows, slice) else len(rows)
        design = self.objective.design
        if design.streamed:
            row_bytes += design.row_nbytes  # the chunk's pages are resident while used
        chunk = min(rows_per_chunk(row_bytes, n_rows, self._working_bytes()), MAX_CHUNK_ROWS)
        return [(out, out if isinstance(rows, slice) else rows[out])
                for out in row_slices(n_rows, chunk)]

    def _map_rows(self, method: str, rows, row_bytes: float, *args):
        """Yield ``(output slice, self.<method>(index, *args))`` over training-row chunks.

        Chunks run through joblib (see :mod:`skinfluence._parallel`): serially, in
        threads, or on the workers of whatever backend is active.
        """
        chunks = self._row_chunks(rows, row_bytes)
        results = map_chunks(_row_task, self, [idx for _, idx in chunks], method, *args,
                             n_jobs=self.n_jobs)
        for (out_sl, _), result in zip(chunks, results):
            yield out_sl, result

    def _test_problem(self, X_test, y_test) -> tuple[LinearDesign, np.ndarray]:
        design = self.objective.featurize(X_test)
        y_enc = self.objective.encode_target(y_test)
        if len(y_enc) != design.n_samples:
            raise ValueError(
                f"X_test has {design.n_samples} rows but y_test has {len(y_enc)}."
            )
        return design, y_enc

    def _map_tests(self, method: str, n_test: int, row_bytes: float, *args) -> np.ndarray:
        """``self.<method>(test_slice, *args)`` over test chunks, joined on the last axis.

        A chunk holds as many test points as keep ``row_bytes`` per (training row, test
        point) within the budget.  Several chunks run in parallel (each then loops over
        training rows serially); a single chunk runs here and parallelizes over
        training-row chunks instead.
        """
        budget = self._working_bytes()
        size = int(budget // max(row_bytes * max(self.n_train, 1), 1))
        size = max(1, min(size, MAX_TEST_CHUNK))
        chunks = row_slices(n_test, size) or [slice(0, 0)]
        out = None
        results = map_chunks(_test_task, self, chunks, method, *args, n_jobs=self.n_jobs)
        for test_sl, part in zip(chunks, results):
            if out is None:
                out = np.empty(part.shape[:-1] + (n_test,))
            out[..., test_sl] = part
        return out

    @_within_budget
    def test_loss(self, X_test, y_test) -> np.ndarray:
        """Per-point loss of the fitted model on test data, shape (n_test,)."""
        design, y_enc = self._test_problem(X_test, y_test)
        return self.objective.loss.value(y_enc, self.objective.raw_predictions(design))

    def _test_gradients(self, design: LinearDesign, y_enc) -> np.ndarray:
        raw = self.objective.raw_predictions(design)
        resid = self.objective.loss.gradient(y_enc, raw)
        return outer_gradients(resid, design.dense())

    # ------------------------------------------------------------------ influence
    @_within_budget
    def influence_factors(self, X_test, y_test) -> np.ndarray:
        """``H^-1 g_t`` for every test point, shape (n_params, n_test).

        Cache these to score many training subsets against the same test points with
        :meth:`influence_from_factors`.
        """
        self._ensure_fitted()
        design, y_enc = self._test_problem(X_test, y_test)
        grads = self._test_gradients(design, y_enc)
        return self.solver_.solve(grads.T)

    def _stack_outputs(self, factors: np.ndarray) -> np.ndarray:
        """(K*p, m) output-major factors as (p, K*m): one product with ``X~`` per chunk."""
        obj = self.objective
        K, p = obj.n_outputs, obj.n_params_per_output
        m = factors.shape[1]
        return factors.reshape(K, p, m).transpose(1, 0, 2).reshape(p, K * m)

    def _influence_rows(self, idx, stacked: np.ndarray) -> np.ndarray:
        """``-n s_i g_i^T factors`` for one chunk of training rows, (c, m)."""
        obj = self.objective
        K = obj.n_outputs
        m = stacked.shape[1] // K
        proj = obj.design.rows(idx).dot(stacked)
        coef = (-obj.n_samples * obj.sample_weight[idx])[:, None] * obj.residual[idx]
        if K == 1:  # scaled in place: the result is the size of the influence block
            proj *= coef
            return proj
        return np.einsum("ck,ckm->cm", coef, proj.reshape(-1, K, m))

    @_within_budget
    def influence_from_factors(self, factors: np.ndarray, train_indices=None) -> np.ndarray:
        """``-n s_i g_i^T factors`` for training rows, shape (n_rows, n_test)."""
        obj = self.objective
        factors = np.asarray(factors, dtype=np.float64)
        if factors.ndim != 2 or factors.shape[0] != obj.n_params:
            raise ValueError(
                f"factors must have shape ({obj.n_params}, n_test), got {factors.shape}."
            )
        rows = self._rows(train_indices)
        K, m = obj.n_outputs, factors.shape[1]
        n_rows = obj.n_samples if isinstance(rows, slice) else len(rows)
        stacked = self._stack_outputs(factors)
        blocks = list(self._map_rows("_influence_rows", rows, 16 * K * m, stacked))
        if len(blocks) == 1:
            return blocks[0][1]  # one chunk of rows: it is the result, no copy
        out = np.empty((n_rows, m))
        for out_sl, block in blocks:
            out[out_sl] = block
        return out

    def _influence_tests(self, test_sl, design, y_enc, train_indices) -> np.ndarray:
        grads = self._test_gradients(design.rows(test_sl), y_enc[test_sl])
        return self.influence_from_factors(self.solver_.solve(grads.T), train_indices)

    @_within_budget
    def influence(self, X_test, y_test, *, train_indices=None) -> np.ndarray:
        """Koh & Liang's ``I_up,loss(z_i, z_t)`` for every training row and test point.

        Parameters
        ----------
        X_test : array-like or sparse matrix of shape (n_test, n_features)
        y_test : array-like of shape (n_test,)
        train_indices : array-like of int or bool, default=None
            Training rows to return (all when None).

        Returns
        -------
        ndarray of shape (n_rows, n_test)
            ``-n s_i g_t^T H^-1 g_i``.  Removing row ``i`` changes the loss at ``t`` by
            about ``-influence[i, t] / n``: positive values are harmful rows.
        """
        self._ensure_fitted()
        design, y_enc = self._test_problem(X_test, y_test)
        self._check_result_size(train_indices, design.n_samples)
        K = self.objective.n_outputs
        return self._map_tests("_influence_tests", design.n_samples, 16 * K,
                               design, y_enc, train_indices)

    def _check_result_size(self, train_indices, n_test: int, per_entry: int = 1) -> None:
        n_rows = self.n_train if train_indices is None else len(self._rows(train_indices))
        size = 8.0 * n_rows * n_test * per_entry
        if size > MAX_RESULT_BYTES:
            raise MemoryError(
                f"The result would have {n_rows} x {n_test} x {per_entry} entries "
                f"({size / 2**30:.1f} GiB); pass train_indices or fewer test points."
            )

    def _self_influence_rows(self, idx) -> np.ndarray:
        obj = self.objective
        if obj.n_outputs == 1:
            quad = obj.residual[idx, 0] ** 2 * self._leverage_blocks(idx)[:, 0, 0]
        else:
            dense = obj.design.rows(idx).dense()
            quad = self.solver_.quadratic_forms(outer_gradients(obj.residual[idx], dense).T)
        return -obj.n_samples * obj.sample_weight[idx] * quad

    @_within_budget
    def self_influence(self, *, train_indices=None) -> np.ndarray:
        """``I_up,loss(z_i, z_i) = -n s_i g_i^T H^-1 g_i`` (non-positive for a convex fit).

        The paper's score for finding mislabeled rows (Section 5.4): rank by magnitude
        (:meth:`rank_training_points` with ``kind="self"``).

        Returns
        -------
        ndarray of shape (n_rows,)
        """
        self._ensure_fitted()
        self._prepare_leverage()
        obj = self.objective
        rows = self._rows(train_indices)
        n_rows = obj.n_samples if isinstance(rows, slice) else len(rows)
        out = np.empty(n_rows)
        for out_sl, block in self._map_rows("_self_influence_rows", rows, 8 * obj.n_params * 3):
            out[out_sl] = block
        return out

    # ------------------------------------------------------------------ parameters
    def _prepare_leverage(self) -> None:
        """Every row's leverage up front when the solver has them all at once.

        A dual solver gets them from one triangular inverse: compute it here, once,
        rather than in each chunk (or on each worker).
        """
        if (self.objective.n_outputs == 1 and hasattr(self.solver_, "leverage")
                and getattr(self, "_leverage_all", None) is None):
            with self._lock:
                if getattr(self, "_leverage_all", None) is None:
                    self._leverage_all = self.solver_.leverage()

    def _leverage_blocks(self, idx) -> np.ndarray:
        """``M_i = U_i^T H^-1 U_i`` of training rows, ``U_i = I_K (x) x~_i``: (c, K, K)."""
        obj = self.objective
        K = obj.n_outputs
        if K == 1:
            if hasattr(self.solver_, "leverage"):
                self._prepare_leverage()
                return self._leverage_all[idx][:, None, None]
            dense = obj.design.rows(idx).dense()
            return self.solver_.quadratic_forms(dense.T)[:, None, None]
        dense = obj.design.rows(idx).dense()
        return self.solver_.bilinear_blocks(_kron_columns(dense, K), K)

    def _newton_weights(self, idx, leverage=None) -> np.ndarray:
        """``w_i = (I - s_i D_i M_i)^-1 s_i r_i`` so that ``dtheta_i = H^-1 U_i w_i``."""
        obj = self.objective
        K = obj.n_outputs
        sw = obj.sample_weight[idx]
        if leverage is None:
            leverage = self._leverage_blocks(idx)
        lhs = np.eye(K) - sw[:, None, None] * np.einsum(
            "ckl,clj->ckj", obj.curvature[idx], leverage
        )
        rhs = sw[:, None] * obj.residual[idx]
        if K == 1:
            denom = lhs[:, 0, 0]
            tiny = np.finfo(float).eps
            return rhs / np.where(np.abs(denom) > tiny, denom, tiny)[:, None]
        return np.linalg.solve(lhs, rhs[:, :, None])[:, :, 0]

    @_within_budget
    def influence_params(self, train_indices=None) -> np.ndarray:
        """Koh & Liang's ``I_up,params(z_i) = -n s_i H^-1 g_i``.

        Returns
        -------
        ndarray of shape (n_rows, n_params)
            In the objective's flat layout, output-major (see
            :meth:`params_to_estimator` to get ``coef_``/``intercept_`` shapes).
            Removing row ``i`` changes the parameters by about ``-result[i] / n``.
        """
        return -self.objective.n_samples * self.loo_params(train_indices, method="influence")

    def _loo_params_rows(self, idx, method: str) -> np.ndarray:
        obj = self.objective
        dense = obj.design.rows(idx).dense()
        if method == "influence":
            w = obj.sample_weight[idx, None] * obj.residual[idx]
        else:
            w = self._newton_weights(idx)
        # H^-1 U_i w_i = H^-1 (w_i (x) x~_i): one solve per row
        return self.solver_.solve(outer_gradients(w, dense).T).T

    @_within_budget
    def loo_params(self, train_indices=None, *, method: str = "influence") -> np.ndarray:
        """Predicted parameter change when each row is removed, (n_rows, n_params).

        ``"influence"``: ``s_i H^-1 g_i``; ``"newton"``: one exact Newton step of the
        objective without the row, ``(H - s_i U_i D_i U_i^T)^-1 s_i g_i``.
        """
        self._ensure_fitted()
        _check_method(method)
        self._prepare_leverage()
        obj = self.objective
        rows = self._rows(train_indices)
        K, P = obj.n_outputs, obj.n_params
        n_rows = obj.n_samples if isinstance(rows, slice) else len(rows)
        self._check_result_size(train_indices, P)
        out = np.empty((n_rows, P))
        for out_sl, block in self._map_rows("_loo_params_rows", rows, 8 * P * (K + 2), method):
            out[out_sl] = block
        return out

    def params_to_estimator(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Split flat parameters (..., n_params) into ``coef_``- and ``intercept_``-shaped parts."""
        obj = self.objective
        K, p = obj.n_outputs, obj.n_params_per_output
        params = np.asarray(params).reshape(params.shape[:-1] + (K, p))
        design = obj.design
        if design.fit_intercept:
            return params[..., :-1], design.intercept_scaling * params[..., -1]
        return params, np.zeros(params.shape[:-1] + (K,))

    # ------------------------------------------------------------------ LOO effects
    @_within_budget
    def loo_effect(self, X_test, y_test, *, method: str = "influence",
                   train_indices=None) -> np.ndarray:
        """Predicted change in each test loss when each training row is removed.

        Parameters
        ----------
        X_test, y_test : test data
        method : {"influence", "newton"}, default="influence"
            ``"influence"``: the paper's first-order estimate ``-influence / n``.
            ``"newton"``: one exact Newton step of the objective without the row
            (Sherman-Morrison/Woodbury through the row's leverage, about the cost of
            :meth:`self_influence`), then the test loss evaluated exactly at the new
            raw predictions.  Exact for quadratic objectives (ridge).
        train_indices : array-like, default=None

        Returns
        -------
        ndarray of shape (n_rows, n_test)
            Comparable with actual leave-one-out retraining
            (:func:`skinfluence.validation.loo_retrain`).
        """
        _check_method(method)
        if method == "influence":
            return -self.influence(X_test, y_test, train_indices=train_indices) / self.n_train
        self._ensure_fitted()
        self._prepare_leverage()
        obj = self.objective
        design, y_enc = self._test_problem(X_test, y_test)
        self._check_result_size(train_indices, design.n_samples)
        rows = self._rows(train_indices)
        K = obj.n_outputs
        # training-side Newton weights (leverage costs about one self-influence), by
        # training row so that every chunk finds its own
        weights = np.zeros((self.n_train, K))
        for out_sl, block in self._map_rows("_newton_weights", rows,
                                            8 * obj.n_params * (K + 2)):
            weights[np.arange(self.n_train)[rows][out_sl]] = block
        return self._map_tests("_newton_tests", design.n_samples, 8 * K * K * 3,
                               design, y_enc, rows, weights)

    def _newton_tests(self, test_sl, design, y_enc, rows, weights) -> np.ndarray:
        """Newton leave-one-out test-loss changes for one chunk of test points."""
        obj = self.objective
        K, p = obj.n_outputs, obj.n_params_per_output
        tdesign = design.rows(test_sl)
        m = tdesign.n_samples
        raw_t = obj.raw_predictions(tdesign)
        y_t = y_enc[test_sl]
        # T = H^-1 [U_t for each test point]: K columns per point
        T = self.solver_.solve(_kron_columns(tdesign.dense(), K))
        stacked = T.reshape(K, p, m * K).transpose(1, 0, 2).reshape(p, K * m * K)
        n_rows = obj.n_samples if isinstance(rows, slice) else len(rows)
        out = np.empty((n_rows, m))
        for out_sl, block in self._map_rows("_newton_loss_rows", rows, 8 * K * K * m * 3,
                                            weights, stacked, raw_t, y_t):
            out[out_sl] = block
        return out

    def _newton_loss_rows(self, idx, weights, stacked, raw_t, y_t) -> np.ndarray:
        """Test-loss change when each row of a chunk is removed (one Newton step), (c, m)."""
        obj = self.objective
        K = obj.n_outputs
        m = raw_t.shape[0]
        proj = obj.design.rows(idx).dot(stacked).reshape(-1, K, m, K)
        delta = np.einsum("ck,ckmj->cmj", weights[idx], proj)
        new_raw = raw_t[None, :, :] + delta
        c = new_raw.shape[0]
        vals = obj.loss.value(_tile_targets(y_t, c), new_raw.reshape(c * m, K))
        return vals.reshape(c, m) - obj.loss.value(y_t, raw_t)[None, :]

    @_within_budget
    def self_loo_effect(self, *, method: str = "influence", train_indices=None) -> np.ndarray:
        """Predicted increase of each row's own loss when that row is removed.

        ``"influence"`` is ``-self_influence / n``; ``"newton"`` evaluates the row's loss
        at its one-step leave-one-out raw prediction (the classic ``e_i / (1 - h_ii)``
        for ridge, where it is exact).  Shape (n_rows,).
        """
        _check_method(method)
        if method == "influence":
            return -self.self_influence(train_indices=train_indices) / self.n_train
        raw_loo = self.loo_raw_predictions(train_indices=train_indices)
        obj = self.objective
        rows = self._rows(train_indices)
        y = obj.y[rows]
        return obj.loss.value(y, raw_loo) - obj.loss.value(y, obj.raw[rows])

    @_within_budget
    def loo_raw_predictions(self, *, train_indices=None) -> np.ndarray:
        """One-step Newton leave-one-out raw predictions of the training rows, (n_rows, K).

        Row ``i``'s prediction from the model refitted without it, to one Newton step
        (exact for ridge): the basis of approximate leave-one-out cross-validation.
        """
        self._ensure_fitted()
        self._prepare_leverage()
        obj = self.objective
        rows = self._rows(train_indices)
        K = obj.n_outputs
        n_rows = obj.n_samples if isinstance(rows, slice) else len(rows)
        out = np.empty((n_rows, K))
        for out_sl, block in self._map_rows("_loo_raw_rows", rows, 8 * obj.n_params * (K + 2)):
            out[out_sl] = block
        return out

    def _loo_raw_rows(self, idx) -> np.ndarray:
        obj = self.objective
        lev = self._leverage_blocks(idx)
        w = self._newton_weights(idx, leverage=lev)
        # removing the row moves its own raw prediction by U_i^T H^-1 U_i w_i = M_i w_i
        return obj.raw[idx] + np.einsum("ckl,cl->ck", lev, w)

    # ------------------------------------------------------------------ groups & edits
    def _reweight_step(self, dense_rows, y_rows, delta, method) -> np.ndarray:
        """Parameter change when row weights change by ``delta`` (removal: ``-s_i``).

        First order: ``-H^-1 sum_j delta_j g_j``.  Newton: the exact Newton step of the
        reweighted objective, ``-H^-1 U (I + Delta D M)^-1 (delta r)`` (Woodbury).
        """
        obj = self.objective
        K = obj.n_outputs
        raw = obj.raw_predictions(_as_design(dense_rows))
        resid = obj.loss.gradient(y_rows, raw)
        if method == "influence":
            return -self.solver_.solve(outer_gradients(delta[:, None] * resid, dense_rows).sum(0))
        curv = obj.loss.hessian(y_rows, raw)
        q = dense_rows.shape[0]
        U = _kron_columns(dense_rows, K)  # (P, q*K)
        HU = self.solver_.solve(U)
        M = U.T @ HU
        Dblk = np.zeros((q * K, q * K))
        for j in range(q):
            Dblk[j * K:(j + 1) * K, j * K:(j + 1) * K] = delta[j] * curv[j]
        a = np.linalg.solve(np.eye(q * K) + Dblk @ M, (delta[:, None] * resid).ravel())
        return -HU @ a

    def _loss_change(self, design, y_enc, dtheta) -> np.ndarray:
        obj = self.objective
        raw = obj.raw_predictions(design)
        K, p = obj.n_outputs, obj.n_params_per_output
        new_raw = raw + design.dot(dtheta.reshape(K, p).T)
        return obj.loss.value(y_enc, new_raw) - obj.loss.value(y_enc, raw)

    @_within_budget
    def group_effect(self, groups, X_test, y_test, *, method: str = "influence") -> np.ndarray:
        """Predicted change in each test loss when a whole group of rows is removed.

        Parameters
        ----------
        groups : list of array-like of int, or array-like of shape (n_train,)
            Either a list of row-index arrays, or one group label per training row
            (groups in ``np.unique`` order).
        X_test, y_test : test data
        method : {"influence", "newton"}, default="influence"
            ``"influence"``: first order, the sum of the rows' ``loo_effect``.
            ``"newton"``: one exact Newton step without the whole group (rank
            ``|group| * K`` Woodbury update), then the exact test loss.

        Returns
        -------
        ndarray of shape (n_groups, n_test)
        """
        self._ensure_fitted()
        _check_method(method)
        obj = self.objective
        design, y_enc = self._test_problem(X_test, y_test)
        out = []
        for idx in self._group_indices(groups):
            dense = obj.design.rows(idx).dense()
            if method == "influence":
                dtheta = self._reweight_step(dense, obj.y[idx], -obj.sample_weight[idx], method)
                grads_t = self._test_gradients(design, y_enc)
                out.append(grads_t @ dtheta)
            else:
                dtheta = self._reweight_step(dense, obj.y[idx], -obj.sample_weight[idx], method)
                out.append(self._loss_change(design, y_enc, dtheta))
        return np.array(out).reshape(len(out), design.n_samples)

    def _group_indices(self, groups) -> list[np.ndarray]:
        if isinstance(groups, (list, tuple)) and (
            len(groups) == 0 or not isinstance(groups[0], numbers.Number)
        ):
            # each group is checked like train_indices: no silent casts of floats/masks
            return [self._rows(np.atleast_1d(np.asarray(g))) for g in groups]
        labels = np.asarray(groups)
        if labels.shape != (self.n_train,):
            raise ValueError(
                "groups must be a list of index arrays or one label per training row "
                f"(shape ({self.n_train},)), got shape {labels.shape}."
            )
        return [np.flatnonzero(labels == g) for g in np.unique(labels)]

    @_within_budget
    def edit_effect(self, train_indices, X_test, y_test, *, X_new=None, y_new=None,
                    method: str = "influence") -> np.ndarray:
        """Predicted change in each test loss when training rows are edited one at a time.

        The paper's discrete perturbation ``z_i -> z_new``: a flipped label
        (``y_new``), an edited row (``X_new``) or both.  Each edit is evaluated on its
        own, the other rows unchanged.

        Parameters
        ----------
        train_indices : array-like of int of shape (n_edits,)
        X_test, y_test : test data
        X_new : array-like of shape (n_edits, n_features), default=None
            New features (unchanged when None).
        y_new : array-like of shape (n_edits,), default=None
            New targets (unchanged when None).
        method : {"influence", "newton"}, default="influence"
            First order ``-s_i g_t^T H^-1 (g(z_new) - g(z_i))``, or one exact Newton step
            of the edited objective (then the exact test loss).

        Returns
        -------
        ndarray of shape (n_edits, n_test)
        """
        self._ensure_fitted()
        _check_method(method)
        obj = self.objective
        rows = self._rows(train_indices)
        if isinstance(rows, slice):
            rows = np.arange(self.n_train)
        old_design = obj.design.rows(rows)
        new_design = old_design if X_new is None else obj.featurize(X_new)
        if new_design.n_samples != len(rows):
            raise ValueError(
                f"X_new has {new_design.n_samples} rows for {len(rows)} train_indices."
            )
        y_old = obj.y[rows]
        y_new_enc = y_old if y_new is None else obj.encode_target(y_new)
        if len(y_new_enc) != len(rows):
            raise ValueError(f"y_new has {len(y_new_enc)} values for {len(rows)} train_indices.")
        design, y_enc = self._test_problem(X_test, y_test)
        sw = obj.sample_weight[rows]
        old_dense, new_dense = old_design.dense(), new_design.dense()
        if method == "influence":
            factors = self.solver_.solve(self._test_gradients(design, y_enc).T)
            g_old = outer_gradients(obj.loss.gradient(y_old, obj.raw_predictions(old_design)),
                                    old_dense)
            g_new = outer_gradients(obj.loss.gradient(y_new_enc, obj.raw_predictions(new_design)),
                                    new_dense)
            return -sw[:, None] * ((g_new - g_old) @ factors)
        out = np.empty((len(rows), design.n_samples))
        for j in range(len(rows)):
            dense = np.vstack([old_dense[j], new_dense[j]])
            ys = np.concatenate([np.atleast_1d(y_old[j]), np.atleast_1d(y_new_enc[j])])
            dtheta = self._reweight_step(dense, ys, np.array([-sw[j], sw[j]]), method)
            out[j] = self._loss_change(design, y_enc, dtheta)
        return out

    # ------------------------------------------------------------------ perturbation
    @_within_budget
    def perturbation_influence(self, X_test, y_test, *, train_indices=None,
                               aggregate: str | None = None) -> np.ndarray:
        """Koh & Liang's ``I_pert,loss``: gradient of the test loss in each training row.

        ``I_pert,loss(z_i, z_t) = -n s_i g_t^T H^-1 grad_x grad_theta l(z_i)``, in closed
        form (``O(K d)`` per row after one solve per test point).  Moving row ``i`` by a
        small ``delta`` changes the loss at ``t`` by about ``result[i, t] @ delta / n``.

        Parameters
        ----------
        X_test, y_test : test data
        train_indices : array-like, default=None
        aggregate : {None, "sum", "mean"}, default=None
            Reduce over test points (the gradient of the total or mean test loss).

        Returns
        -------
        ndarray of shape (n_rows, n_test, n_features), or (n_rows, n_features) when
        aggregated.
        """
        self._ensure_fitted()
        if aggregate not in (None, "sum", "mean"):
            raise ValueError(f"aggregate must be None, 'sum' or 'mean', got {aggregate!r}.")
        obj = self.objective
        design, y_enc = self._test_problem(X_test, y_test)
        factors = self.solver_.solve(self._test_gradients(design, y_enc).T)
        test_weights = None
        if aggregate is not None:
            factors = factors.sum(axis=1, keepdims=True)
            test_weights = np.ones(design.n_samples)
            if aggregate == "mean":
                factors /= max(design.n_samples, 1)
                test_weights /= max(design.n_samples, 1)
        m = factors.shape[1]
        d = obj.n_input_features
        self._check_result_size(train_indices, m, d)
        rows = self._rows(train_indices)
        n_rows = obj.n_samples if isinstance(rows, slice) else len(rows)
        out = np.empty((n_rows, m, d))
        for out_sl, block in self._map_rows("_perturbation_rows", rows,
                                            8 * m * (d + 2 * obj.n_outputs) * 2,
                                            factors, design, y_enc, test_weights):
            out[out_sl] = block
        return out[:, 0, :] if aggregate is not None else out

    def _perturbation_rows(self, idx, factors, design, y_enc, test_weights) -> np.ndarray:
        obj = self.objective
        block = obj.input_cross_products(factors, idx)
        # objectives whose parametrization moves with the training inputs (exact kernel
        # maps) add the part of H^-1 g_t that lies outside the parametrization's span
        test_term = getattr(obj, "test_input_cross_products", None)
        if test_term is not None:
            block = block + test_term(design, y_enc, idx, test_weights)
        return -obj.n_samples * block

    # ------------------------------------------------------------------ ranking
    def rank_training_points(self, X_test=None, y_test=None, *, kind: str | None = None,
                             top_k: int | None = 10, method: str = "influence",
                             return_scores: bool = False):
        """Training rows ordered by their effect on test points (or on themselves).

        Parameters
        ----------
        X_test, y_test : test data, default=None
            Without test data the ranking is by self-influence (mislabel search).
        kind : {"harmful", "helpful", "influential", "self"}, default=None
            ``"harmful"``: removing the row lowers the total test loss the most;
            ``"helpful"``: removing it raises the loss the most; ``"influential"``:
            largest effect either way; ``"self"``: largest increase of the row's own
            loss when it is removed.  None means ``"harmful"`` with test data and
            ``"self"`` without.
        top_k : int or None, default=10
            How many rows to return (all when None).
        method : {"influence", "newton"}, default="influence"
        return_scores : bool, default=False

        Returns
        -------
        indices : ndarray of shape (top_k,)
        scores : ndarray of shape (top_k,), only when ``return_scores``
            The predicted change in the total test loss (or, for ``"self"``, in the
            row's own loss) when the row is removed.
        """
        _check_method(method)
        if kind is None:
            kind = "self" if X_test is None else "harmful"
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}.")
        if top_k is not None and (not isinstance(top_k, numbers.Integral) or top_k < 1):
            raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}.")
        if kind == "self":
            scores = self.self_loo_effect(method=method)
            order = np.argsort(-scores, kind="stable")
        else:
            if X_test is None or y_test is None:
                raise ValueError(f"kind={kind!r} needs X_test and y_test.")
            scores = self.loo_effect(X_test, y_test, method=method).sum(axis=1)
            key = {"harmful": scores, "helpful": -scores, "influential": -np.abs(scores)}[kind]
            order = np.argsort(key, kind="stable")
        if top_k is not None:
            order = order[:top_k]
        return (order, scores[order]) if return_scores else order


def _kron_columns(dense_rows: np.ndarray, K: int) -> np.ndarray:
    """Columns ``e_k (x) x~_i`` for each row i and output k: shape (K*p, c*K)."""
    c, p = dense_rows.shape
    if K == 1:
        return np.ascontiguousarray(dense_rows.T)
    U = np.zeros((K, p, c, K))
    for k in range(K):
        U[k, :, :, k] = dense_rows.T
    return U.reshape(K * p, c * K)


def _tile_targets(y: np.ndarray, reps: int) -> np.ndarray:
    return np.tile(y, (reps,) + (1,) * (np.ndim(y) - 1))


def _as_design(dense_rows: np.ndarray) -> LinearDesign:
    """A design whose rows already hold the intercept column (used internally)."""
    return LinearDesign(dense_rows, fit_intercept=False)
