"""Kernel models as linear models on a kernel map.

A kernel model ``f(x) = sum_j beta_j k(x_j, x) + b`` fitted with the RKHS penalty
``0.5 * beta^T K beta`` is, by the representer theorem, a linear model on the
*empirical kernel map*: with ``K = U diag(lam) U^T`` and the orthonormal basis
``e_a = sum_j U_ja lam_a^{-1/2} phi(x_j)`` of the span of the training rows in the
RKHS, the coordinates ``w = diag(lam)^{1/2} U^T beta`` of ``f`` give
``beta^T K beta = ||w||^2`` and ``f(x) = z(x) . w`` with the whitened features
``z(x) = k(x, X_train) U diag(lam)^{-1/2}`` (``z(x_i)`` is the ``i``-th row of
``U diag(lam)^{1/2}``).  The engine then treats the model as a plain
:class:`~skinfluence.objective.GLMObjective` with penalty ``||w||^2``.

Influence does not depend on the parametrization, and nothing is lost by this one:

- removing or reweighting a training row keeps the optimum in the span of the
  training rows, so leave-one-out effects (first order or Newton) are those of the
  RKHS problem itself;
- eigenvalues below ``eigenvalue_cutoff * lam_max`` are dropped.  A direction with
  eigenvalue ``lam`` changes predictions by at most ``sqrt(k(x, x) * lam) * |u^T beta|``,
  so the default cutoff (``1e-12``, about the rounding level of an eigensolver in
  double precision) removes only numerical noise and the exact null space.

:class:`NystroemKernelMap` replaces the span of all training rows by the span of
``n_components`` landmark rows (:class:`sklearn.kernel_approximation.Nystroem`):
``O(n m^2)`` instead of ``O(n^3)``.  It is an approximation of the RKHS Hessian (the
data term sees the projections of ``phi(x_i)`` on the landmarks' span); fitted
predictions can still be the model's exact ones (see ``raw_offset`` below), so that
the curvature and residuals of every row are exact.

Perturbation influence (moving a training row ``x_i``) differentiates through
``k(x_i, .)``: ``x_i`` enters the RKHS objective only through its own loss term, but
the span of the training rows moves with it, and the test gradient's component
outside that span (``phi(x_t) - P phi(x_t)``) then contributes.
:meth:`KernelObjective.test_input_cross_products` adds that part; the engine calls
it when the objective defines it.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from sklearn.metrics.pairwise import pairwise_kernels

from .objective import GLMObjective, LinearDesign

__all__ = [
    "KernelSpec",
    "ExactKernelMap",
    "NystroemKernelMap",
    "KernelDesign",
    "KernelObjective",
    "make_kernel_map",
]

#: kernels whose gradient in the inputs is implemented (and that Nystroem accepts by name)
GRADIENT_KERNELS = ("linear", "poly", "polynomial", "rbf", "sigmoid")
# working memory (bytes) of one (rows x basis x columns) block in the input gradients
_GRADIENT_BLOCK_BYTES = 64 * 2**20


def _dense(X) -> np.ndarray:
    return np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64)


class KernelSpec:
    """A kernel function with resolved parameters, and its gradient in the inputs.

    Parameters
    ----------
    kernel : str or callable
        A name of :func:`sklearn.metrics.pairwise.pairwise_kernels`, ``"precomputed"``
        or a callable.
    params : dict, default=None
        Keyword parameters (``gamma``, ``degree``, ``coef0``, or a callable's own).
        ``None`` values take :mod:`sklearn.metrics.pairwise`'s defaults.
    matrix_callable : bool, default=False
        How a callable is called: ``kernel(A, B)`` returning the whole matrix
        (:class:`sklearn.svm.SVC`'s convention) when True, element-wise through
        ``pairwise_kernels`` (:class:`sklearn.kernel_ridge.KernelRidge`'s) otherwise.
    """

    def __init__(self, kernel, params: dict | None = None, *, matrix_callable: bool = False):
        self.kernel = kernel
        self.params = {k: v for k, v in dict(params or {}).items() if v is not None}
        self.matrix_callable = bool(matrix_callable)

    @property
    def precomputed(self) -> bool:
        return isinstance(self.kernel, str) and self.kernel == "precomputed"

    @property
    def differentiable(self) -> bool:
        return isinstance(self.kernel, str) and self.kernel in GRADIENT_KERNELS

    def __call__(self, A, B) -> np.ndarray:
        """Kernel matrix ``k(A, B)``, shape (len(A), len(B))."""
        if self.precomputed:
            raise ValueError("A precomputed kernel has no kernel function to evaluate.")
        if callable(self.kernel) and self.matrix_callable:
            return np.asarray(self.kernel(A, B), dtype=np.float64)
        return np.asarray(pairwise_kernels(A, B, metric=self.kernel, filter_params=True,
                                           **self.params), dtype=np.float64)

    def _resolved(self, n_features: int) -> tuple[float, float, float]:
        """(gamma, degree, coef0) with pairwise_kernels' defaults filled in."""
        gamma = self.params.get("gamma")
        gamma = 1.0 / n_features if gamma is None else float(gamma)
        degree = float(self.params.get("degree", 3))
        coef0 = float(self.params.get("coef0", 1.0))
        return gamma, degree, coef0

    def gradient_weights(self, A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(W_b, W_a)`` with ``grad_a k(a_c, b_j) = W_b[c, j] b_j + W_a[c, j] a_c``."""
        if not self.differentiable:
            raise ValueError(
                f"The gradient of kernel={self.kernel!r} in its inputs is not available "
                f"(perturbation influence supports {GRADIENT_KERNELS}); precomputed and "
                "callable kernels only support influence of removing or reweighting rows."
            )
        gamma, degree, coef0 = self._resolved(A.shape[1])
        name = self.kernel
        if name == "linear":
            return np.ones((A.shape[0], B.shape[0])), np.zeros((A.shape[0], B.shape[0]))
        if name in ("poly", "polynomial"):
            base = gamma * (A @ B.T) + coef0
            return degree * gamma * base ** (degree - 1), np.zeros_like(base)
        if name == "sigmoid":
            value = np.tanh(gamma * (A @ B.T) + coef0)
            return gamma * (1.0 - value**2), np.zeros_like(value)
        # rbf: grad_a exp(-gamma ||a - b||^2) = 2 gamma k (b - a)
        value = self(A, B)
        return 2.0 * gamma * value, -2.0 * gamma * value

    def input_gradient(self, A, B, coeffs: np.ndarray) -> np.ndarray:
        """``sum_j coeffs[j, m] grad_a k(a, b_j)`` at each row of ``A``: (len(A), m, d).

        Parameters
        ----------
        A : array of shape (c, d)
            Points where the gradient is taken (first argument of the kernel).
        B : array of shape (q, d)
            The other argument.
        coeffs : array of shape (q, m)
        """
        A, B = _dense(A), _dense(B)
        coeffs = np.asarray(coeffs, dtype=np.float64)
        c, d = A.shape
        q, m = coeffs.shape
        out = np.empty((c, m, d))
        step = int(max(1, _GRADIENT_BLOCK_BYTES // max(8 * q * m, 1)))
        for start in range(0, c, step):
            sl = slice(start, min(c, start + step))
            W_b, W_a = self.gradient_weights(A[sl], B)
            # (rows, basis, m) -> contract the basis with B in one GEMM
            weighted = W_b[:, :, None] * coeffs[None, :, :]
            rows = weighted.shape[0]
            out[sl] = (weighted.transpose(0, 2, 1).reshape(rows * m, q) @ B).reshape(rows, m, d)
            out[sl] += (W_a @ coeffs)[:, :, None] * A[sl][:, None, :]
        return out

    def nystroem_params(self) -> dict:
        """Keyword arguments of :class:`sklearn.kernel_approximation.Nystroem`."""
        if not self.differentiable:
            raise ValueError(
                f"The Nystroem map needs a named kernel among {GRADIENT_KERNELS}, "
                f"got kernel={self.kernel!r}; use kernel_map='exact'."
            )
        keys = ("gamma", "degree", "coef0")
        return dict(kernel=self.kernel, **{k: self.params[k] for k in keys if k in self.params})


class ExactKernelMap:
    """The whitened empirical kernel map of the training rows (exact up to a cutoff).

    Parameters
    ----------
    kernel : KernelSpec
    eigenvalue_cutoff : float, default=1e-12
        Eigenvalues of ``K`` below ``eigenvalue_cutoff * max eigenvalue`` are dropped
        (numerical noise and the exact null space).

    Attributes
    ----------
    basis_ : array of shape (n, d) or None
        The training inputs (None for a precomputed kernel).
    normalization_ : ndarray of shape (n, r)
        ``U diag(lam)^{-1/2}``: ``z(x) = k(x, basis_) @ normalization_``.
    train_features_ : ndarray of shape (n, r)
        ``z(x_i) = U diag(lam)^{1/2}`` (so that ``train_features_ @ train_features_.T = K``
        up to the cutoff).
    eigenvalues_ : ndarray of shape (r,)
    n_discarded_ : int
        How many eigen-directions were dropped.
    """

    basis_is_training = True

    def __init__(self, kernel: KernelSpec, *, eigenvalue_cutoff: float = 1e-12):
        self.kernel = kernel
        self.eigenvalue_cutoff = eigenvalue_cutoff

    def fit(self, X) -> "ExactKernelMap":
        """Eigendecompose ``K = k(X, X)`` (``X`` is ``K`` itself when precomputed)."""
        if not 0 <= self.eigenvalue_cutoff < 1:
            raise ValueError(f"eigenvalue_cutoff must be in [0, 1), got {self.eigenvalue_cutoff!r}.")
        if self.kernel.precomputed:
            gram = _dense(X)
            if gram.shape[0] != gram.shape[1]:
                raise ValueError(
                    f"A precomputed training kernel must be square, got shape {gram.shape}."
                )
            self.basis_ = None
        else:
            gram = self.kernel(X, X)
            self.basis_ = X
        gram = 0.5 * (gram + gram.T)
        evals, evecs = scipy.linalg.eigh(gram, check_finite=True)
        top = float(evals[-1]) if evals.size else 0.0
        if top <= 0:
            raise ValueError("The kernel matrix of the training rows is zero or negative.")
        # an eigensolver's rounding leaves eigenvalues of about -n * eps * top
        if evals[0] < -max(1e-8, 100 * gram.shape[0] * np.finfo(float).eps) * top:
            raise ValueError(
                f"The kernel matrix is not positive semi-definite (eigenvalues from "
                f"{evals[0]:.3g} to {top:.3g}): the RKHS penalty is not a norm and "
                "influence is undefined. Use a positive definite kernel."
            )
        keep = evals > self.eigenvalue_cutoff * top
        lam = evals[keep]
        U = evecs[:, keep]
        self.eigenvalues_ = lam
        self.normalization_ = U / np.sqrt(lam)
        self.train_features_ = U * np.sqrt(lam)
        self.n_discarded_ = int(np.sum(~keep))
        return self

    @property
    def n_components(self) -> int:
        return self.train_features_.shape[1]

    def transform(self, X) -> np.ndarray:
        """Whitened features of new inputs (kernel rows when precomputed), (n_new, r)."""
        K_new = _dense(X) if self.kernel.precomputed else self.kernel(X, self.basis_)
        return K_new @ self.normalization_

    def coef_from_dual(self, dual_coef: np.ndarray) -> np.ndarray:
        """Coordinates ``w`` (r, K) of ``f = sum_j dual_coef[j] phi(x_j)`` (n, K)."""
        return self.train_features_.T @ np.asarray(dual_coef, dtype=np.float64)

    def dual_from_coef(self, coef: np.ndarray) -> np.ndarray:
        """Dual coefficients over the training rows of the function with coordinates ``coef``."""
        return self.normalization_ @ np.asarray(coef, dtype=np.float64)


class NystroemKernelMap:
    """A Nystroem map: the span of ``n_components`` landmark rows (sklearn's ``Nystroem``).

    Landmarks are training rows drawn at random (``random_state``) and held fixed:
    perturbation influence moves a training row but not a landmark that happens to
    be the same row.

    Parameters
    ----------
    kernel : KernelSpec
        A named kernel (``"linear"``, ``"poly"``, ``"rbf"``, ``"sigmoid"``).
    n_components : int, default=1000
    random_state : int, RandomState instance or None, default=None

    Attributes
    ----------
    nystroem_ : sklearn.kernel_approximation.Nystroem
    basis_ : ndarray of shape (n_components, d)
        The landmarks.
    normalization_ : ndarray of shape (n_components, n_components)
        ``z(x) = k(x, basis_) @ normalization_``.
    train_features_ : ndarray of shape (n, n_components)
    """

    basis_is_training = False

    def __init__(self, kernel: KernelSpec, *, n_components: int = 1000, random_state=None):
        self.kernel = kernel
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, X) -> "NystroemKernelMap":
        from sklearn.kernel_approximation import Nystroem

        if not isinstance(self.n_components, numbers.Integral) or self.n_components < 1:
            raise ValueError(f"n_components must be a positive integer, got {self.n_components!r}.")
        n_components = min(int(self.n_components), X.shape[0])
        nys = Nystroem(n_components=n_components, random_state=self.random_state,
                       **self.kernel.nystroem_params())
        self.nystroem_ = nys.fit(X)
        self.basis_ = nys.components_
        self.normalization_ = np.asarray(nys.normalization_.T, dtype=np.float64)
        self.train_features_ = self.transform(X)
        return self

    def transform(self, X) -> np.ndarray:
        return self.kernel(X, self.basis_) @ self.normalization_

    def coef_from_dual(self, dual_coef: np.ndarray, X_train=None) -> np.ndarray:
        """Projection on the landmarks' span of ``f = sum_j dual_coef[j] phi(x_j)``."""
        return self.train_features_.T @ np.asarray(dual_coef, dtype=np.float64)

    def dual_from_coef(self, coef: np.ndarray) -> np.ndarray:
        """Coefficients over the landmarks of the function with coordinates ``coef``."""
        return self.normalization_ @ np.asarray(coef, dtype=np.float64)


def make_kernel_map(kernel: KernelSpec, kernel_map="exact", *, n_components: int = 1000,
                    eigenvalue_cutoff: float = 1e-12, random_state=None):
    """An unfitted kernel map from its name (``"exact"`` or ``"nystroem"``) or an instance."""
    if kernel_map == "exact":
        return ExactKernelMap(kernel, eigenvalue_cutoff=eigenvalue_cutoff)
    if kernel_map == "nystroem":
        return NystroemKernelMap(kernel, n_components=n_components, random_state=random_state)
    raise ValueError(f"kernel_map must be 'exact' or 'nystroem', got {kernel_map!r}.")


class KernelDesign(LinearDesign):
    """Whitened kernel features that remember their raw inputs (and a prediction offset).

    Parameters
    ----------
    features : ndarray of shape (n, r)
    inputs : array of shape (n, d) or None
        The raw inputs the features came from (for gradients in the inputs).
    raw_offset : ndarray of shape (n, K) or None
        Added to ``features @ coef`` to give the model's exact raw predictions when
        the map approximates a model fitted in the full RKHS (Nystroem).
    fit_intercept : bool
    """

    def __init__(self, features, *, inputs=None, raw_offset=None, fit_intercept: bool = True):
        super().__init__(np.asarray(features, dtype=np.float64), fit_intercept=fit_intercept)
        self.inputs = inputs
        self.raw_offset = raw_offset

    def rows(self, index) -> "KernelDesign":
        return KernelDesign(
            self.X[index],
            inputs=None if self.inputs is None else self.inputs[index],
            raw_offset=None if self.raw_offset is None else self.raw_offset[index],
            fit_intercept=self.fit_intercept,
        )


class KernelObjective(GLMObjective):
    """A kernel model's objective as a linear objective on a fitted kernel map.

    Parameters
    ----------
    loss : Loss
    kernel_map : ExactKernelMap or NystroemKernelMap
        Fitted on the training inputs.
    inputs : array of shape (n, d)
        The training inputs (the kernel matrix when precomputed).
    y : targets encoded for ``loss``
    coef : ndarray of shape (K, r [+ 1])
        Coordinates on the map (intercept last when ``fit_intercept``).
    fit_intercept : bool
    penalty : float
        RKHS penalty strength ``lambda`` of ``0.5 * lambda * ||f||^2`` (the intercept
        is unpenalized).
    sample_weight : ndarray of shape (n,), default=None
    exact_raw : callable, default=None
        ``inputs -> (n, K)`` raw predictions of the fitted model.  When given, the
        objective's raw predictions are the model's own, not their projection on
        the map (used with a Nystroem map of a model fitted in the full RKHS).
    check_inputs : callable, default=None
        Validates new raw inputs (feature count and names) before featurizing.
    encode_target : callable, default=None
    """

    #: the engine's "auto" skips the n x n dual solve: it is no smaller than the primal
    prefers_primal_solve = True

    def __init__(self, loss, kernel_map, inputs, y, coef, *, fit_intercept: bool,
                 penalty: float, sample_weight=None, exact_raw=None, check_inputs=None,
                 encode_target=None):
        self.kernel_map = kernel_map
        self._exact_raw = exact_raw
        self._check_inputs = check_inputs
        coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
        features = kernel_map.train_features_
        design = self._make_design(features, inputs, coef, fit_intercept, exact_raw)
        super().__init__(loss, design, y, coef, penalty=float(penalty),
                         sample_weight=sample_weight, featurize=self._featurize,
                         encode_target=encode_target)

    @staticmethod
    def _make_design(features, inputs, coef, fit_intercept, exact_raw) -> KernelDesign:
        offset = None
        if exact_raw is not None:
            plain = LinearDesign(features, fit_intercept=fit_intercept).dot(coef.T)
            offset = np.asarray(exact_raw(inputs), dtype=np.float64).reshape(plain.shape) - plain
        return KernelDesign(features, inputs=inputs, raw_offset=offset,
                            fit_intercept=fit_intercept)

    def _featurize(self, X) -> KernelDesign:
        if isinstance(X, KernelDesign):
            return X
        if self._check_inputs is not None:
            X = self._check_inputs(X)
        return self._make_design(self.kernel_map.transform(X), X, self.coef,
                                 self.design.fit_intercept, self._exact_raw)

    def raw_predictions(self, design) -> np.ndarray:
        raw = super().raw_predictions(design)
        offset = getattr(design, "raw_offset", None)
        return raw if offset is None else raw + offset

    # ------------------------------------------------------------------ inputs
    @property
    def n_input_features(self) -> int:
        inputs = self.design.inputs
        return 0 if inputs is None else inputs.shape[1]

    def _check_differentiable(self) -> None:
        kernel = self.kernel_map.kernel
        if kernel.precomputed:
            raise ValueError(
                "Perturbation influence needs the kernel's gradient in its inputs, which "
                "a precomputed kernel does not have."
            )
        kernel.gradient_weights(np.zeros((1, 1)), np.zeros((1, 1)))  # raises if unknown

    def _basis_coeffs(self, coords: np.ndarray) -> np.ndarray:
        """Coefficients over the map's basis of functions with coordinates (r, m)."""
        return self.kernel_map.dual_from_coef(coords)

    def input_cross_products(self, factors, index):
        """``factors^T grad_{x_i} grad_theta J`` through ``k(x_i, .)``, (n_rows, m, d).

        Row ``i`` enters the RKHS objective through its loss term
        ``s_i l(y_i, f(x_i) + b)``; differentiating its gradient ``l'_i (phi(x_i), 1)``
        in ``x_i`` gives ``l''_i grad f(x_i) (x) (phi(x_i), 1) + l'_i (grad phi(x_i), 0)``.
        Both are evaluated with the kernel's input gradient on the map's basis.
        """
        self._check_differentiable()
        kernel = self.kernel_map.kernel
        basis = self.kernel_map.basis_
        K, p = self.coef.shape
        r = self.design.n_features
        m = factors.shape[1]
        V3 = np.asarray(factors, dtype=np.float64).reshape(K, p, m)
        rows = self.design.rows(index)
        inputs = _dense(rows.inputs)
        proj = rows.dot(V3.transpose(1, 0, 2).reshape(p, K * m)).reshape(-1, K, m)
        curv_proj = np.einsum("ckl,clm->ckm", self.curvature[index], proj)
        # gradient of each output's decision function at x_i: (c, K, d)
        grad_f = kernel.input_gradient(inputs, basis, self._basis_coeffs(self.coef[:, :r].T))
        out = np.einsum("ckm,ckd->cmd", curv_proj, grad_f)
        resid = self.residual[index]
        for k in range(K):
            out += resid[:, k, None, None] * kernel.input_gradient(
                inputs, basis, self._basis_coeffs(V3[k, :r, :]))
        out *= self.sample_weight[index][:, None, None]
        return out

    def test_input_cross_products(self, design, y_enc, index, test_weights=None):
        """The part of ``g_t^T H^-1 grad_{x_i} grad_theta J`` outside the map's span.

        With the exact map the parametrization is the span ``S`` of the training
        rows, which moves with ``x_i``.  In the RKHS, ``H`` is ``lambda I`` (the
        penalty alone) on the orthogonal complement of ``S``, so ``H^-1 g_t`` has the
        extra component ``l'_t (phi(x_t) - P_S phi(x_t)) / lambda``; its product with
        ``l'_i grad phi(x_i)`` is added here.  (A Nystroem map's span does not move:
        nothing to add.)

        Parameters
        ----------
        design : KernelDesign
            The test points (with their raw inputs).
        y_enc : encoded test targets
        index : training rows
        test_weights : ndarray of shape (n_test,), default=None
            None: one result column per test point; otherwise a single column for
            ``sum_t test_weights[t] * (test point t)``.

        Returns
        -------
        ndarray of shape (n_rows, m, d)
        """
        if not self.kernel_map.basis_is_training:
            return 0.0
        self._check_differentiable()
        kernel = self.kernel_map.kernel
        K = self.n_outputs
        test_resid = self.loss.gradient(y_enc, self.raw_predictions(design))  # (n_t, K)
        n_t = test_resid.shape[0]
        inputs = _dense(self.design.rows(index).inputs)
        test_inputs = _dense(design.inputs)
        resid = self.residual[index]
        out = 0.0
        for k in range(K):
            # rho: weight of test point t in result column m
            rho = (np.diag(test_resid[:, k]) if test_weights is None
                   else (test_weights * test_resid[:, k])[:, None])
            # P_S phi(x_t) = sum_j gamma_tj phi(x_j), gamma_t = N z(x_t)
            on_basis = -self.kernel_map.dual_from_coef(design.X.T @ rho)
            part = (kernel.input_gradient(inputs, test_inputs, rho)
                    + kernel.input_gradient(inputs, self.kernel_map.basis_, on_basis))
            out = out + resid[:, k, None, None] * part
        if n_t == 0:
            return np.zeros((len(resid), 0 if test_weights is None else 1,
                             self.n_input_features))
        # the whitened coordinates all carry the RKHS penalty lambda
        lam = float(self.penalty[0])
        return out * (self.sample_weight[index] / lam)[:, None, None]
