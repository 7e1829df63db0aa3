"""Fitted objectives: a loss, a linear parameter layout and a penalty, at the fit.

The objective that every skinfluence estimator hands to the engine is

.. math::

    J(\\Theta) = \\sum_i s_i \\, \\ell(y_i, \\Theta \\tilde x_i)
                 + \\tfrac12 \\sum_{k, j} \\lambda_j \\Theta_{kj}^2 ,

with ``Theta`` of shape ``(n_outputs, n_params_per_output)``, ``x~_i = [x_i, a]`` the
row with the intercept column ``a`` (``intercept_scaling``) appended when there is an
intercept, ``s_i`` the sample weights (``sample_weight`` times ``class_weight``) and
``lambda_j`` a per-column penalty (``1/C`` for scikit-learn's logistic regression,
``0`` on an unpenalized intercept).  Dividing scikit-learn's objectives by a constant
never changes influence as long as every quantity is derived from the same ``J``.

Parameters are flattened output-major: ``theta[k * p + j] = Theta[k, j]``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse as sp
from sklearn import get_config
from sklearn.utils import gen_batches

from ._parallel import held_bytes, portable_state, realigned_state
from ._streaming import (
    FileArrayReference,
    is_dask_array,
    is_streamed,
    picklable_reference,
    release_rows,
    to_numpy,
)
from .losses import Loss

__all__ = ["LinearDesign", "GLMObjective", "working_memory_bytes", "rows_per_chunk",
           "row_slices"]

#: largest chunk of a pass over X: BLAS works best on blocks that stay in cache, and
#: a temporary the size of working_memory (1 GiB by default) only costs page faults
PASS_CHUNK_BYTES = 32 * 2**20


def working_memory_bytes() -> float:
    """The chunk budget: scikit-learn's ``working_memory`` (MiB) in bytes."""
    return float(get_config()["working_memory"]) * 2**20


def rows_per_chunk(row_bytes: float, n_rows: int, budget: float | None = None) -> int:
    """Rows whose intermediate arrays (``row_bytes`` each) fit the budget, at least one."""
    budget = working_memory_bytes() if budget is None else budget
    return int(max(1, min(max(n_rows, 1), budget // max(row_bytes, 1))))


def row_slices(n_rows: int, size: int) -> list[slice]:
    """Consecutive slices of ``size`` rows covering ``n_rows`` (none for zero rows)."""
    # scikit-learn's gen_batches refuses n = 0; an empty selection is a valid request
    return list(gen_batches(n_rows, size)) if n_rows > 0 else []


def _csr_rows(X: sp.csr_matrix, index):
    """Rows of a CSR matrix; a contiguous slice is a view (no copy of the non-zeros)."""
    if isinstance(index, slice):
        start, stop, step = index.indices(X.shape[0])
        if step == 1:
            stop = max(stop, start)
            lo, hi = X.indptr[start], X.indptr[stop]
            return sp.csr_matrix((X.data[lo:hi], X.indices[lo:hi], X.indptr[start:stop + 1] - lo),
                                 shape=(stop - start, X.shape[1]), copy=False)
    return X[index]


class LinearDesign:
    """The rows ``x~_i = [x_i, a]`` of a linear model, without copying ``X``.

    Every pass over ``X`` goes through row chunks sized by scikit-learn's
    ``working_memory``, so intermediate arrays stay within that budget whatever the
    number of rows.  Memory-mapped files and dask arrays are *streamed*: a chunk is
    read when it is needed and a memory-mapped chunk's pages are given back once it is
    processed (see :mod:`skinfluence._streaming`), so a file larger than memory can
    be explained.

    Parameters
    ----------
    X : ndarray, memmap, dask array or scipy sparse matrix of shape (n_samples, n_features)
        The features.  Dense arrays are used as they are (float32 stays float32);
        sparse matrices are converted to CSR once; memory-mapped and dask arrays of
        any numeric dtype are read chunk by chunk (converted to float64 per chunk
        unless they are float32/float64).
    fit_intercept : bool
        Whether a constant column is appended.
    intercept_scaling : float
        Value of that constant column (liblinear's ``intercept_scaling``; 1 otherwise).
    """

    def __init__(self, X, *, fit_intercept: bool = True, intercept_scaling: float = 1.0):
        streamed = False
        if sp.issparse(X):
            X = sp.csr_matrix(X)
            if X.dtype not in (np.float32, np.float64):
                X = X.astype(np.float64)
        elif is_streamed(X):
            if X.ndim != 2 or X.dtype.kind not in "biuf":
                raise ValueError(
                    f"A streamed X must be a 2-d numeric array, got shape {X.shape} and "
                    f"dtype {X.dtype}."
                )
            streamed = True
        elif getattr(X, "dtype", None) not in (np.float32, np.float64):
            X = np.asarray(X, dtype=np.float64)
        self.X = X
        self.streamed = streamed
        self.fit_intercept = bool(fit_intercept)
        self.intercept_scaling = float(intercept_scaling)

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        state = dict(self.__dict__)
        # a shared memory-mapped file travels by name: a worker maps it, no data is sent
        state["X"] = picklable_reference(self.X)
        return state

    def __setstate__(self, state):
        if isinstance(state.get("X"), FileArrayReference):
            state = dict(state, X=state["X"].open())
        self.__dict__.update(realigned_state(state))

    def __sizeof__(self) -> int:
        return object.__sizeof__(self) + held_bytes(self.__dict__)

    # ------------------------------------------------------------------ layout
    @property
    def sparse(self) -> bool:
        return sp.issparse(self.X)

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    @property
    def n_params(self) -> int:
        return self.X.shape[1] + int(self.fit_intercept)

    @property
    def row_nbytes(self) -> float:
        """Bytes of one row once read into memory (non-zeros and indices when sparse)."""
        if self.sparse:
            return 12.0 * self.X.nnz / max(self.n_samples, 1) + 4.0
        itemsize = self.X.dtype.itemsize if self.X.dtype.kind == "f" else 8
        return float(itemsize * self.n_features)

    # ------------------------------------------------------------------ chunks
    def _read(self, index):
        """Rows as an in-memory array (CSR, float32 or float64)."""
        if self.sparse:
            return _csr_rows(self.X, index)
        block = to_numpy(self.X[index]) if is_dask_array(self.X) else self.X[index]
        if block.dtype not in (np.float32, np.float64):
            block = block.astype(np.float64)
        return block

    def release(self, index=slice(None)) -> None:
        """Give back the memory pages of some rows of a memory-mapped ``X``."""
        if self.streamed and isinstance(self.X, np.ndarray):
            release_rows(self.X, index)

    def _like(self, X) -> "LinearDesign":
        """A plain design over other rows, with this one's intercept."""
        return LinearDesign(X, fit_intercept=self.fit_intercept,
                            intercept_scaling=self.intercept_scaling)

    def parts(self, row_bytes: float):
        """``(slice, in-memory LinearDesign)`` over row chunks within the budget.

        ``row_bytes`` are the caller's intermediate bytes per row; a streamed design
        adds the bytes of the row itself, which are resident while the chunk is used.
        The pages of a memory-mapped chunk are given back after the caller is done.
        """
        for sl in self.batches(row_bytes):
            yield sl, self._like(self._read(sl))
            self.release(sl)

    def batches(self, row_bytes: float):
        """Slices of rows whose intermediate arrays (``row_bytes`` per row) fit the budget.

        A chunk holds at most ``min(working_memory, PASS_CHUNK_BYTES)``.
        """
        n = self.n_samples
        extra = self.row_nbytes if self.streamed else 0.0
        budget = min(working_memory_bytes(), PASS_CHUNK_BYTES)
        return row_slices(n, rows_per_chunk(row_bytes + extra, n, budget))

    def rows(self, index) -> "LinearDesign":
        """The design restricted to some rows.

        A slice is a view (of the file, for a memory-mapped ``X``: still streamed);
        other indices copy the rows into memory.
        """
        if isinstance(index, slice) and index.indices(self.n_samples) == (0, self.n_samples, 1):
            return self  # sparse row slicing copies: never copy the whole matrix
        if self.streamed and not isinstance(index, slice):
            block = self._read(index)
            self.release(index)
            return self._like(block)
        X = _csr_rows(self.X, index) if self.sparse else self.X[index]
        return self._like(X)

    def dense(self) -> np.ndarray:
        """``X~`` as a dense float64 array (use on chunks only)."""
        X = self._read(slice(None)) if self.streamed else self.X
        X = X.toarray() if sp.issparse(X) else np.asarray(X)
        X = X.astype(np.float64, copy=False)
        if self.fit_intercept:
            X = np.hstack([X, np.full((X.shape[0], 1), self.intercept_scaling)])
        self.release()
        return X

    # ------------------------------------------------------------------ products
    def _dot_block(self, V: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``X~ @ V`` into ``out`` (float64, one row per row of this design)."""
        d = self.n_features
        Vw = V[:d].astype(self.X.dtype, copy=False)
        if not self.sparse and self.X.dtype == np.float64:
            np.matmul(self.X, Vw, out=out)
        else:  # float32 products (or sparse ones) cast to float64 as they are stored
            out[...] = self.X @ Vw
        if self.fit_intercept:
            out += self.intercept_scaling * V[d]
        return out

    def _tdot_block(self, Q: np.ndarray) -> np.ndarray:
        return np.asarray(self.X.T @ Q.astype(self.X.dtype, copy=False), dtype=np.float64)

    def dot(self, V: np.ndarray) -> np.ndarray:
        """``X~ @ V`` for ``V`` of shape (n_params, m)."""
        V = np.asarray(V)
        V2 = V[:, None] if V.ndim == 1 else V
        out = np.empty((self.n_samples, V2.shape[1]))
        # each chunk's product lands in its rows of the result: no temporary per chunk
        for sl, part in self.parts(8 * V2.shape[1]):
            part._dot_block(V2, out[sl])
        return out[:, 0] if V.ndim == 1 else out

    def tdot(self, Q: np.ndarray) -> np.ndarray:
        """``X~.T @ Q`` for ``Q`` of shape (n_samples, m)."""
        Q = np.asarray(Q)
        top = np.zeros((self.n_features, Q.shape[1]))
        for sl, part in self.parts(8 * Q.shape[1]):
            top += part._tdot_block(Q[sl])
        if not self.fit_intercept:
            return top
        return np.vstack([top, self.intercept_scaling * Q.sum(axis=0, keepdims=True)])

    def gram(self, weights: np.ndarray) -> np.ndarray:
        """``X~.T @ diag(weights) @ X~`` as a dense float64 (n_params, n_params) array.

        This is the one place where the Hessian's sandwich product is computed: a
        symmetric rank-k update (half a GEMM) on row chunks when the weights share one
        sign (the softmax cross blocks ``-p_k p_l`` are all non-positive), a GEMM
        otherwise, and a sparse product for sparse ``X``.
        """
        weights = np.asarray(weights, dtype=np.float64)
        # +1 / -1 when every weight has that sign: X~.T diag(w) X~ = sign * A.T A with
        # A = sqrt(|w|) X~, a rank-k update; 0 when the signs are mixed
        sign = 1.0 if np.all(weights >= 0) else (-1.0 if np.all(weights <= 0) else 0.0)
        if sign and not self.sparse:
            return self._gram_rank_k(weights, sign)
        d, p = self.n_features, self.n_params
        out = np.zeros((p, p))
        col = np.zeros(d)
        # a sparse chunk's products scale with its non-zeros (counting them as d per
        # row would cut a 10^6-column matrix into chunks of a few rows)
        for sl, part in self.parts(4 * self.row_nbytes if self.sparse else 8 * d + 16):
            Xc, wc = part.X, weights[sl]
            if self.sparse:
                block = (Xc.T @ (sp.diags(wc) @ Xc)).tocoo()
                block.sum_duplicates()
                out[block.row, block.col] += block.data
                col += np.asarray(Xc.T @ wc).ravel()
                continue
            Xc = np.asarray(Xc)
            out[:d, :d] += Xc.T @ (Xc * wc.astype(Xc.dtype)[:, None])
            col += wc @ Xc
        if self.fit_intercept:
            a = self.intercept_scaling
            out[:d, d] = out[d, :d] = a * col
            out[d, d] = a * a * weights.sum()
        return out

    def _gram_rank_k(self, weights: np.ndarray, sign: float) -> np.ndarray:
        """:meth:`gram` for dense ``X`` and weights of one sign: one rank-k update per chunk.

        Each chunk is copied once, scaled by ``sqrt(|w|)`` with the intercept column
        appended, so one product gives the whole block (no second pass for the
        intercept row).  The product is numpy's ``A.T @ A``, which numpy hands to its
        BLAS as a symmetric rank-k update (half a GEMM's flops) and mirrors itself;
        scipy's ``dsyrk`` would run on scipy's own OpenBLAS, whose threads then compete
        with numpy's for the same cores.
        """
        d, p = self.n_features, self.n_params
        out = np.zeros((p, p))
        for sl, part in self.parts(8 * p + 16):
            Xc = np.asarray(part.X)
            dtype = Xc.dtype if Xc.dtype in (np.float32, np.float64) else np.float64
            root = np.sqrt(sign * weights[sl]).astype(dtype)
            scaled = np.empty((Xc.shape[0], p), dtype=dtype)
            np.multiply(Xc, root[:, None], out=scaled[:, :d])
            if self.fit_intercept:
                scaled[:, d] = self.intercept_scaling * root
            # float32 chunks are multiplied in float32 and summed over chunks in float64
            if sign > 0:
                out += scaled.T @ scaled
            else:
                out -= scaled.T @ scaled
        return out

    def squared_norms(self, weights: np.ndarray) -> np.ndarray:
        """Diagonal of :meth:`gram`, shape (n_params,)."""
        weights = np.asarray(weights, dtype=np.float64)
        diag = np.zeros(self.n_features)
        for sl, part in self.parts(2 * self.row_nbytes if self.sparse else 8 * self.n_features):
            Xc = part.X
            X2 = Xc.multiply(Xc) if self.sparse else np.square(Xc, dtype=np.float64)
            diag += np.asarray(X2.T @ weights[sl]).ravel()
        if self.fit_intercept:
            diag = np.append(diag, self.intercept_scaling**2 * weights.sum())
        return diag


class GLMObjective:
    """A fitted objective of a (generalized) linear model, evaluated at its fit.

    Parameters
    ----------
    loss : Loss
        The pointwise loss (used for gradients and Hessians).
    design : LinearDesign
        The training rows.
    y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        Targets encoded for ``loss``.
    coef : ndarray of shape (n_outputs, n_params_per_output)
        Fitted parameters ``Theta`` (intercept in the last column if any).
    penalty : float or ndarray of shape (n_params_per_output,)
        Per-column L2 strengths ``lambda_j``.  A float applies to every feature
        column and leaves the intercept unpenalized.
    sample_weight : ndarray of shape (n_samples,), default=None
        ``s_i``; ones when None.
    featurize : callable, default=None
        Maps raw test inputs to a :class:`LinearDesign`.  Default: a linear design
        with this objective's intercept, after checking the number of features.
    encode_target : callable, default=None
        Maps raw test targets to the loss' encoding.  Default: unchanged.
    """

    def __init__(
        self,
        loss: Loss,
        design: LinearDesign,
        y,
        coef,
        *,
        penalty=0.0,
        sample_weight=None,
        featurize: Callable | None = None,
        encode_target: Callable | None = None,
    ):
        self.loss = loss
        self.design = design
        self.y = np.asarray(y)
        coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
        if coef.shape[1] != design.n_params:
            raise ValueError(
                f"coef has {coef.shape[1]} columns, the design has {design.n_params} "
                "parameters per output."
            )
        self.coef = coef
        n = design.n_samples
        if sample_weight is None:
            sample_weight = np.ones(n)
        self.sample_weight = np.asarray(sample_weight, dtype=np.float64)
        if self.sample_weight.shape != (n,):
            raise ValueError(
                f"sample_weight has shape {self.sample_weight.shape}, expected ({n},)."
            )
        p = design.n_params
        if np.ndim(penalty) == 0:
            lam = np.full(p, float(penalty))
            if design.fit_intercept:
                lam[-1] = 0.0
        else:
            lam = np.asarray(penalty, dtype=np.float64)
            if lam.shape != (p,):
                raise ValueError(f"penalty has shape {lam.shape}, expected ({p},).")
        if np.any(lam < 0) or not np.all(np.isfinite(lam)):
            raise ValueError("penalty strengths must be finite and non-negative.")
        self.penalty = lam
        self._featurize = featurize
        self._encode_target = encode_target
        self.raw = self.raw_predictions(design)
        self.residual = loss.gradient(self.y, self.raw)
        self.curvature = loss.hessian(self.y, self.raw)

    # ------------------------------------------------------------------ layout
    def __sizeof__(self) -> int:
        return object.__sizeof__(self) + held_bytes(self.__dict__)

    def __getstate__(self):
        return portable_state(self.__dict__)

    def __setstate__(self, state):
        self.__dict__.update(realigned_state(state))

    @property
    def n_samples(self) -> int:
        return self.design.n_samples

    @property
    def n_outputs(self) -> int:
        return self.coef.shape[0]

    @property
    def n_params_per_output(self) -> int:
        return self.coef.shape[1]

    @property
    def n_params(self) -> int:
        return self.coef.size

    @property
    def theta(self) -> np.ndarray:
        return self.coef.ravel()

    def raw_predictions(self, design: LinearDesign) -> np.ndarray:
        """Raw predictions ``Theta x~`` for a design, shape (n, n_outputs)."""
        return design.dot(self.coef.T)

    # ------------------------------------------------------------------ test side
    def featurize(self, X) -> LinearDesign:
        """Design of new inputs, validated against the training design."""
        if self._featurize is not None:
            return self._featurize(X)
        design = X if isinstance(X, LinearDesign) else LinearDesign(
            X, fit_intercept=self.design.fit_intercept,
            intercept_scaling=self.design.intercept_scaling,
        )
        if design.n_features != self.design.n_features:
            raise ValueError(
                f"X has {design.n_features} features, but the model was fitted with "
                f"{self.design.n_features} features."
            )
        return design

    def encode_target(self, y) -> np.ndarray:
        if self._encode_target is not None:
            return self._encode_target(y)
        return np.asarray(y)

    # ------------------------------------------------------------------ derivatives
    def gradient(self) -> np.ndarray:
        """Gradient of ``J`` at the fit, shape (n_params,)."""
        weighted = self.residual * self.sample_weight[:, None]
        grad = self.design.tdot(weighted).T + self.penalty * self.coef
        return grad.ravel()

    def per_sample_gradients(self, index=slice(None)) -> np.ndarray:
        """Unweighted ``grad_theta l(z_i)`` for some rows, shape (n_rows, n_params)."""
        return outer_gradients(self.residual[index], self.design.rows(index).dense())

    def hessian(self) -> np.ndarray:
        """Dense Hessian of ``J``, shape (n_params, n_params)."""
        K, p = self.coef.shape
        weighted = self.curvature * self.sample_weight[:, None, None]
        hess = np.empty((K * p, K * p))
        for k in range(K):
            for l in range(k, K):
                block = self.design.gram(weighted[:, k, l])
                hess[k * p:(k + 1) * p, l * p:(l + 1) * p] = block
                if l != k:
                    hess[l * p:(l + 1) * p, k * p:(k + 1) * p] = block.T
        hess[np.diag_indices_from(hess)] += np.tile(self.penalty, K)
        return hess

    def hessian_diagonal(self) -> np.ndarray:
        K = self.n_outputs
        weighted = self.curvature * self.sample_weight[:, None, None]
        diag = [self.design.squared_norms(weighted[:, k, k]) for k in range(K)]
        return np.concatenate(diag) + np.tile(self.penalty, K)

    def hessp(self, V: np.ndarray, index=None, data_scale: float = 1.0) -> np.ndarray:
        """Hessian-vector products for a block ``V`` of shape (n_params, m).

        With ``index``, the data term is restricted to those rows and multiplied by
        ``data_scale`` (a mini-batch estimate of the Hessian, used by LiSSA).
        """
        V = np.asarray(V, dtype=np.float64)
        vec = V.ndim == 1
        V2 = V[:, None] if vec else V
        K, p = self.coef.shape
        m = V2.shape[1]
        design = self.design if index is None else self.design.rows(index)
        curv = self.curvature if index is None else self.curvature[index]
        sw = self.sample_weight if index is None else self.sample_weight[index]
        V3 = V2.reshape(K, p, m)
        # one pass over X per chunk: raw-prediction directions for all outputs at once
        stacked = V3.transpose(1, 0, 2).reshape(p, K * m)
        out = np.zeros((p, K * m))
        for sl, part in design.parts(8 * K * m * 3):
            dirs = part.dot(stacked).reshape(-1, K, m)
            q = np.einsum("nkl,nlm->nkm", curv[sl] * sw[sl, None, None], dirs)
            out += part.tdot(q.reshape(-1, K * m))
        result = data_scale * out.reshape(p, K, m).transpose(1, 0, 2).reshape(K * p, m)
        result += np.tile(self.penalty, K)[:, None] * V2
        return result[:, 0] if vec else result

    @property
    def n_input_features(self) -> int:
        """Number of raw input features (the design's, unless a featurizer maps them)."""
        return self.design.n_features

    def input_cross_products(self, factors: np.ndarray, index) -> np.ndarray:
        """``factors^T grad_{x_i} grad_theta J`` for training rows, (n_rows, m, n_features).

        For a linear model row ``i`` enters ``J`` only through ``s_i l(y_i, Theta x~_i)``,
        and ``d g_i / d x_ij = (D_i W[:, j]) (x) x~_i + r_i (x) e_j`` with ``W`` the
        feature columns of ``Theta``.  Objectives whose inputs enter elsewhere too
        (kernel maps) override this.
        """
        K, p = self.coef.shape
        d = self.design.n_features
        m = factors.shape[1]
        V3 = factors.reshape(K, p, m)
        stacked = V3.transpose(1, 0, 2).reshape(p, K * m)
        proj = self.design.rows(index).dot(stacked).reshape(-1, K, m)
        curv_proj = np.einsum("ckl,clm->ckm", self.curvature[index], proj)
        grad = np.einsum("ckm,kd->cmd", curv_proj, self.coef[:, :d])
        grad += np.einsum("ck,kdm->cmd", self.residual[index], V3[:, :d, :])
        grad *= self.sample_weight[index][:, None, None]
        return grad

    def null_space(self) -> np.ndarray:
        """Orthonormal basis of the Hessian's exact null directions, (n_params, r).

        For a shift-invariant loss (softmax) adding the same value to an unpenalized
        column of every output changes nothing, so ``1_K (x) e_j`` is a null direction
        for every unpenalized column ``j`` (the intercept).  No gradient has a
        component along these directions, so the engine solves in their complement.
        """
        K, p = self.coef.shape
        if not self.loss.shift_invariant or K < 2:
            return np.zeros((K * p, 0))
        free = np.flatnonzero(self.penalty == 0)
        basis = np.zeros((K * p, free.size))
        for col, j in enumerate(free):
            basis[np.arange(K) * p + j, col] = 1.0 / np.sqrt(K)
        return basis


def outer_gradients(residual: np.ndarray, dense_rows: np.ndarray) -> np.ndarray:
    """Per-sample gradients ``r_i (x) x~_i`` flattened output-major, (n, K * p)."""
    n, K = residual.shape
    return (residual[:, :, None] * dense_rows[:, None, :]).reshape(n, K * dense_rows.shape[1])
