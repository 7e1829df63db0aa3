"""``TorchInfluence``: Koh & Liang's influence functions for a torch module."""

from __future__ import annotations

import copy
import numbers
import warnings

import numpy as np
import torch

from .._influence import Influence, _check_method
from ..exceptions import NotConvergedWarning
from ..losses import BinaryLogistic, SoftmaxCrossEntropy, SquaredError
from ..objective import GLMObjective, LinearDesign
from ._data import as_tensors, place, resolve_device
from ._model import (
    LOSSES,
    FunctionalModel,
    TorchObjective,
    make_loss,
    resolve_weight_decay,
    select_parameters,
)
from ._solvers import make_torch_solver

__all__ = ["TorchInfluence"]

#: ``solver="auto"`` builds the dense Hessian (one HVP per parameter) up to this many
#: parameters, else uses CG
DIRECT_MAX_PARAMS = 1024
#: memory for one block of influence factors (n_params x test points) and its solve
FACTOR_BLOCK_BYTES = 256 * 2**20
#: up to this many test points a block of training rows is scored in forward mode (one
#: jvp of its losses per test point) rather than through its per-sample gradients: on a
#: 109k-parameter MLP, 5 test points x 1,000 rows took 0.04 s instead of 1.9 s
FORWARD_MODE_MAX_COLUMNS = 64
_ENGINE_SOLVERS = ("auto", "direct", "cg", "lissa", "woodbury")


class TorchInfluence:
    """Influence functions (Koh & Liang, 2017) of a trained torch module.

    The influence is computed on the objective

    ``R(theta) = (1/n) sum_i s_i l(y_i, f(x_i; theta)) + 0.5 sum_j weight_decay_j theta_j^2``

    over the chosen parameters ``theta`` (the others are frozen), with ``J = n R`` as in
    every skinfluence estimator: ``influence(X_test, y_test)[i, t] = -n s_i g_t^T H^-1
    g_i`` with ``H`` the Hessian of ``J``, so that an ``nn.Linear`` logistic model with
    ``weight_decay = 1 / (C n)`` (bias unpenalized) gives exactly the influence of
    ``skinfluence.linear_model.LogisticRegression(C=C)``.  Positive = harmful.

    Parameters
    ----------
    module : torch.nn.Module
        The trained model.  It is copied at :meth:`fit` (parameters frozen at their
        current values) and evaluated in ``eval()`` mode (no dropout, batch-norm with
        its running statistics); it must take one batched input tensor.
    loss : {"cross_entropy", "bce_with_logits", "mse"} or callable, default="cross_entropy"
        Per-sample training loss.  ``"cross_entropy"``: logits ``(n, K)``, integer class
        targets; ``"bce_with_logits"``: one logit, targets in {0, 1}; ``"mse"``: half
        the squared error summed over outputs, ``0.5 ||f(x) - y||^2`` (half of
        ``nn.MSELoss`` for one output).  A callable ``loss(outputs, targets)`` must
        return the per-sample losses, shape ``(batch,)`` (``reduction="none"``).
    params : "all", "last_layer" or list of str, default="all"
        Parameters influence is taken over.  ``"all"``: every parameter with
        ``requires_grad``.  ``"last_layer"``: those of the last layer run in
        ``forward``, the rest frozen (the paper's Inception setting: convex in those
        parameters).  A list: parameter names, or module names for all their parameters.
    weight_decay : float or dict, default=0.0
        L2 strength in ``R`` (the ``weight_decay`` of ``torch.optim.SGD``/``Adam``,
        which adds ``weight_decay * theta`` to the gradient).  A dict maps ``fnmatch``
        patterns of parameter names to strengths, first match wins, unmatched
        parameters are unpenalized: ``{"*bias": 0.0, "*": 1e-4}`` leaves the biases
        unpenalized (as scikit-learn does with intercepts).
    damping : float, default=0.0
        Added to the Hessian of ``R`` (the paper's damping ``lambda``).  Needed when
        ``H`` is not positive definite: a network trained without full convergence,
        non-convex parameters, or unpenalized over-parameterized layers.
    solver : {"auto", "direct", "cg", "lissa", "arnoldi"}, default="auto"
        Inverse-HVP solver.  ``"auto"``: ``"direct"`` up to 1024 parameters (the dense
        Hessian costs one HVP per parameter), else ``"cg"``.  See
        :mod:`skinfluence.torch` for each one.
    solver_options : dict, default=None
        Passed to the solver: ``rtol``/``maxiter`` (CG), ``depth``/``repeats``/
        ``scale``/``batch_size`` (LiSSA), ``rank``/``krylov_dim`` (Arnoldi).
    device : str or torch.device, default=None
        Where to compute.  None: the module's device if it is not the CPU, else CUDA
        when available, else the CPU.
    batch_size : int, default=256
        Rows per vmapped chunk of per-sample gradients and HVPs (bounds memory).
    convergence_tol : float, default=1e-3
        Warn when ``max|grad J| / sum(s)`` exceeds this at the fit.
    random_state : int, RandomState instance or None, default=None
        Seeds LiSSA and the Arnoldi starting vector.

    Attributes
    ----------
    module_ : torch.nn.Module
        The evaluated copy of ``module``.
    param_names_ : list of str
        Chosen parameters; flat vectors (:meth:`influence_factors`) follow this order,
        each tensor flattened row-major.
    n_params_ : int
    n_train_ : int
    solver_ : object
        The fitted solver (torch solver, or the numpy one for the exact last layer).
    engine_ : skinfluence.Influence or None
        For ``params="last_layer"`` with an ``nn.Linear`` head and a built-in loss: the
        numpy engine on the frozen features, which then answers every query (exact,
        with ``method="newton"``).
    diagnostics_ : dict
        ``gradient_norm``, ``solver``, ``damping`` (mean scale, including any added
        automatically), ``n_params``, ``null_dim``, ``backend`` (``"torch"`` or
        ``"engine"``), ``device``.

    Examples
    --------
    >>> import torch
    >>> from skinfluence.torch import TorchInfluence
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
    ...                           torch.nn.Linear(8, 3)).double()
    >>> X, y = torch.randn(50, 4, dtype=torch.float64), torch.arange(50) % 3
    >>> inf = TorchInfluence(net, "cross_entropy", damping=0.01, device="cpu").fit(X, y)
    >>> inf.influence(X[:2], y[:2]).shape
    (50, 2)
    """

    def __init__(self, module: torch.nn.Module, loss="cross_entropy", *, params="all",
                 weight_decay=0.0, damping: float = 0.0, solver: str = "auto",
                 solver_options: dict | None = None, device=None, batch_size: int = 256,
                 convergence_tol: float = 1e-3, random_state=None):
        self.module = module
        self.loss = loss
        self.params = params
        self.weight_decay = weight_decay
        self.damping = damping
        self.solver = solver
        self.solver_options = solver_options
        self.device = device
        self.batch_size = batch_size
        self.convergence_tol = convergence_tol
        self.random_state = random_state

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, sample_weight=None) -> "TorchInfluence":
        """Take the module at its current parameters and prepare the inverse Hessian.

        Parameters
        ----------
        X : array-like, tensor or DataLoader
            Training inputs, rows first (a DataLoader yields ``(inputs, targets)``
            batches in a fixed order; then ``y`` is None).
        y : array-like or tensor, default=None
            Training targets.
        sample_weight : array-like of shape (n_samples,), default=None
            ``s_i`` (ones when None).

        Returns
        -------
        self : TorchInfluence
        """
        self._validate_options()
        device = resolve_device(self.device, self.module)
        module = copy.deepcopy(self.module).to(device).eval()
        dtype = _module_dtype(module)
        X, y = as_tensors(X, y, dtype=dtype, target_dtype=self._target_dtype(dtype))
        n = X.shape[0]
        if n == 0:
            raise ValueError("X has no rows.")
        if sample_weight is None:
            sw = torch.ones(n, dtype=dtype)
        else:
            sw = torch.as_tensor(np.asarray(sample_weight, dtype=np.float64)).to(dtype)
            if sw.shape != (n,):
                raise ValueError(f"sample_weight has shape {tuple(sw.shape)}, expected ({n},).")
            if not bool(torch.isfinite(sw).all()) or bool((sw < 0).any()):
                raise ValueError("sample_weight must be finite and non-negative.")
        X, y = place(X, device), place(y, device)
        example = X[: min(n, self.batch_size)].to(device)
        names = select_parameters(module, self.params, example)
        with torch.no_grad():
            out = module(example)
        self.n_outputs_ = int(out.reshape(out.shape[0], -1).shape[1])
        self._check_loss(self.n_outputs_, y)
        decay = resolve_weight_decay(self.weight_decay, names)

        self.module_ = module
        self.device_ = device
        self.dtype_ = dtype
        self.param_names_ = names
        self.n_train_ = n
        self._loss_fn = make_loss(self.loss)
        self._X, self._y, self._sw = X, y, sw
        full_model = FunctionalModel(module, names)
        self.n_params_ = full_model.n_params
        penalty = torch.cat([
            torch.full((numel,), n * decay[name], dtype=dtype, device=device)
            for name, numel in zip(names, full_model.numels)
        ])
        # the objective over raw inputs (always used for input gradients)
        self._input_objective = TorchObjective(
            full_model, self._loss_fn, X, y, sw, penalty, device=device,
            batch_size=self.batch_size)
        self._head = None
        self.engine_ = None
        if self.params == "last_layer":
            self._fit_last_layer(decay, penalty)
        if self.engine_ is None:
            objective = self._input_objective
            if self._head is not None:
                head, head_names, features = self._head
                objective = TorchObjective(
                    FunctionalModel(head, head_names), self._loss_fn, features, y, sw, penalty,
                    device=device, batch_size=self.batch_size)
            self.objective_ = objective
            self._fit_torch()
        return self

    def _validate_options(self) -> None:
        if not (isinstance(self.damping, numbers.Real) and self.damping >= 0):
            raise ValueError(f"damping must be a number >= 0, got {self.damping!r}.")
        if not (isinstance(self.batch_size, numbers.Integral) and self.batch_size >= 1):
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}.")
        names = ("auto", "direct", "cg", "lissa", "arnoldi", "woodbury")
        if self.solver not in names:
            raise ValueError(f"solver must be one of {names}, got {self.solver!r}.")
        if not callable(self.loss) and self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES} or a callable, got {self.loss!r}.")

    def _target_dtype(self, dtype) -> torch.dtype | None:
        """Class indices for cross-entropy, floats for the others, as given for a callable."""
        if self.loss == "cross_entropy":
            return torch.long
        return None if callable(self.loss) else dtype

    def _check_loss(self, K: int, y: torch.Tensor) -> None:
        if self.loss == "cross_entropy":
            if K < 2:
                raise ValueError(
                    "loss='cross_entropy' needs a module with K >= 2 outputs (logits); for "
                    "one logit use loss='bce_with_logits'."
                )
            if int(y.min()) < 0 or int(y.max()) >= K:
                raise ValueError(f"Class targets must lie in 0 .. {K - 1} for {K} logits.")
        elif self.loss == "bce_with_logits":
            if K != 1:
                raise ValueError(
                    f"loss='bce_with_logits' needs one output per row, the module has {K}."
                )
            if bool(((y < 0) | (y > 1)).any()):
                raise ValueError("bce_with_logits targets must lie in [0, 1].")
        elif self.loss == "mse":
            per_row = int(np.prod(y.shape[1:])) if y.ndim > 1 else 1
            if per_row != K:
                raise ValueError(f"mse targets have {per_row} values per row, the module {K}.")

    # ------------------------------------------------------------------ last layer
    def _fit_last_layer(self, decay: dict, penalty: torch.Tensor) -> None:
        """Frozen features: cache the head's inputs; use the numpy engine when exact."""
        module, names = self.module_, self.param_names_
        prefix = names[0].rsplit(".", 1)[0] if "." in names[0] else ""
        head = module.get_submodule(prefix)
        features = self._features(self._X)
        example = self._X[: min(self.n_train_, self.batch_size)].to(self.device_)
        with torch.no_grad():
            direct = module(example)
            via_head = head(features[: example.shape[0]].to(self.device_))
        tol = 1e-10 if self.dtype_ == torch.float64 else 1e-4
        if direct.shape != via_head.shape or not torch.allclose(
                direct, via_head, rtol=tol, atol=tol * (1.0 + float(direct.abs().max()))):
            # something runs after the last layer: differentiate through the whole module
            return
        local = [n[len(prefix) + 1:] if prefix else n for n in names]
        self._head = (head, local, features)
        builtin = isinstance(self.loss, str)
        # the engine's linear design needs the head's weight (and bias, if any) chosen
        chosen = {n for n, p in head.named_parameters()} == set(local)
        if (isinstance(head, torch.nn.Linear) and builtin and chosen
                and self.solver in _ENGINE_SOLVERS):
            self._fit_engine(head, prefix, decay, features)

    def _features(self, X: torch.Tensor) -> torch.Tensor:
        """Inputs of the last layer for every row (no gradients), kept like ``X``."""
        names = self.param_names_
        prefix = names[0].rsplit(".", 1)[0] if "." in names[0] else ""
        head = self.module_.get_submodule(prefix)
        captured = []
        handle = head.register_forward_pre_hook(lambda _, args: captured.append(args[0]))
        try:
            with torch.no_grad():
                for start in range(0, X.shape[0], self.batch_size):
                    self.module_(X[start:start + self.batch_size].to(self.device_))
        finally:
            handle.remove()
        feats = torch.cat(captured) if captured else torch.zeros(0)
        return place(feats.reshape(feats.shape[0], -1) if isinstance(head, torch.nn.Linear)
                     else feats, self.device_)

    def _fit_engine(self, head: torch.nn.Linear, prefix: str, decay: dict,
                    features: torch.Tensor) -> None:
        n, K = self.n_train_, self.n_outputs_
        key = (prefix + ".") if prefix else ""
        weight = head.weight.detach().to("cpu", torch.float64).numpy()
        has_bias = head.bias is not None
        coef = weight
        if has_bias:
            coef = np.hstack([weight, head.bias.detach().to("cpu", torch.float64).numpy()[:, None]])
        lam = np.full(coef.shape[1], n * decay[key + "weight"])
        if has_bias:
            lam[-1] = n * decay[key + "bias"]
        design = LinearDesign(features.detach().cpu().numpy(), fit_intercept=has_bias)
        loss = {"cross_entropy": SoftmaxCrossEntropy, "bce_with_logits": BinaryLogistic,
                "mse": SquaredError}[self.loss]()
        objective = GLMObjective(
            loss, design, self._engine_targets(self._y), coef, penalty=lam,
            sample_weight=self._sw.to(torch.float64).cpu().numpy(),
            encode_target=self._engine_targets,
        )
        self.engine_ = Influence(
            objective, solver=self.solver, damping=self.damping,
            solver_options=self.solver_options, convergence_tol=self.convergence_tol,
            random_state=self.random_state,
        )
        self.engine_.fit()
        self.solver_ = self.engine_.solver_
        self.diagnostics_ = dict(self.engine_.diagnostics_, backend="engine",
                                 null_dim=int(objective.null_space().shape[1]),
                                 device=str(self.device_))

    def _engine_targets(self, y) -> np.ndarray:
        y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
        if self.loss == "cross_entropy":
            return y.astype(np.intp)
        y = y.astype(np.float64)
        return y.reshape(len(y), -1) if self.loss == "mse" and self.n_outputs_ > 1 else y.ravel()

    # ------------------------------------------------------------------ torch backend
    def _fit_torch(self) -> None:
        obj = self.objective_
        if self.loss == "cross_entropy":
            obj.set_null_space(obj.detect_softmax_null_space(self.n_outputs_))
        null = obj.null_space()
        grad = obj.gradient()
        if null.shape[1]:
            grad = grad - null @ (null.T @ grad)
        norm = float(grad.abs().max()) / max(float(self._sw.sum()), 1e-300)
        if not np.isfinite(norm):
            raise ValueError("The objective's gradient at the fit is not finite.")
        if norm > self.convergence_tol:
            warnings.warn(
                f"The module's parameters are not a stationary point of the training "
                f"objective: max|grad| / sum(sample_weight) = {norm:.3g} > "
                f"{self.convergence_tol:g}. Influence assumes a minimum; train longer, or add "
                "`damping` (as Koh & Liang do for networks trained without convergence).",
                NotConvergedWarning,
                stacklevel=3,
            )
        name = self.solver
        if name == "auto":
            name = "direct" if obj.n_params <= DIRECT_MAX_PARAMS else "cg"
        if name == "woodbury":
            raise ValueError(
                "solver='woodbury' exists only for params='last_layer' with an nn.Linear head "
                "and a built-in loss (the numpy engine)."
            )
        options = dict(self.solver_options or {})
        if name in ("lissa", "arnoldi"):
            options.setdefault("random_state", self.random_state)
        solver = make_torch_solver(name, damping=self.damping * self.n_train_, **options)
        self.solver_ = solver.fit(obj)
        self.diagnostics_ = {
            "gradient_norm": norm,
            "solver": name,
            "damping": getattr(self.solver_, "damping_", self.solver_.damping) / self.n_train_,
            "n_params": obj.n_params,
            "null_dim": int(null.shape[1]),
            "backend": "torch",
            "device": str(self.device_),
        }

    # ------------------------------------------------------------------ helpers
    @property
    def n_train(self) -> int:
        return self.n_train_

    # index validation and result-size checks are the engine's
    _rows = Influence._rows
    _check_result_size = Influence._check_result_size

    def _check_fitted(self) -> None:
        if not hasattr(self, "solver_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(
                "This TorchInfluence is not fitted yet; call fit(X_train, y_train) first."
            )

    def _test_inputs(self, X_test, y_test) -> tuple[torch.Tensor, torch.Tensor]:
        X, y = as_tensors(X_test, y_test, dtype=self.dtype_,
                          target_dtype=self._y.dtype, name="X_test")
        if X.shape[1:] != self._X.shape[1:]:
            raise ValueError(
                f"X_test rows have shape {tuple(X.shape[1:])}, the training rows "
                f"{tuple(self._X.shape[1:])}."
            )
        return X.to(self.device_), y.to(self.device_)

    def _objective_inputs(self, X: torch.Tensor) -> torch.Tensor:
        """What the objective's model consumes: features for a cached last layer."""
        return self._features(X).to(self.device_) if self._head is not None else X

    def _train_rows(self, idx, features: bool = True):
        X = self.objective_.X if features else self._X
        sel = idx if isinstance(idx, slice) else torch.as_tensor(idx, device=X.device)
        ysel = idx if isinstance(idx, slice) else torch.as_tensor(idx, device=self._y.device)
        return X[sel].to(self.device_), self._y[ysel].to(self.device_)

    def _row_chunks(self, rows, per_chunk: int):
        n_rows = self.n_train_ if isinstance(rows, slice) else len(rows)
        for lo in range(0, n_rows, per_chunk):
            hi = min(lo + per_chunk, n_rows)
            yield slice(lo, hi), (slice(lo, hi) if isinstance(rows, slice) else rows[lo:hi])

    def _test_chunk(self, n_test: int) -> int:
        itemsize = torch.finfo(self.dtype_).bits // 8
        per_point = 6 * self.n_params_ * itemsize
        return int(max(1, min(n_test, FACTOR_BLOCK_BYTES // per_point)))

    def _factors(self, X_test: torch.Tensor, y_test: torch.Tensor) -> torch.Tensor:
        """``(H + damping)^-1 g_t`` in the torch layout, shape (n_params, n_test)."""
        if self.engine_ is not None:
            feats = self._features(X_test).cpu().numpy()
            factors = self.engine_.influence_factors(feats, self._engine_targets(y_test))
            return torch.as_tensor(self._engine_to_torch_layout(factors),
                                   dtype=self.dtype_, device=self.device_)
        obj = self.objective_
        grads = obj.sample_gradients(self._objective_inputs(X_test), y_test)
        return self.solver_.solve(grads.T)

    def _engine_to_torch_layout(self, factors: np.ndarray) -> np.ndarray:
        """Engine order (output-major ``[W_k, b_k]``) -> ``[W.ravel(), b]``."""
        K = self.n_outputs_
        m = factors.shape[1]
        p = factors.shape[0] // K
        theta = factors.reshape(K, p, m)
        if len(self.param_names_) == 1:
            return theta.reshape(K * p, m)
        return np.vstack([theta[:, :-1, :].reshape(K * (p - 1), m), theta[:, -1, :]])

    # ------------------------------------------------------------------ influence
    def test_loss(self, X_test, y_test) -> np.ndarray:
        """Per-point loss of the model on test data, shape (n_test,)."""
        self._check_fitted()
        X, y = self._test_inputs(X_test, y_test)
        out = [self._input_objective.losses(X[i:i + self.batch_size], y[i:i + self.batch_size])
               for i in range(0, X.shape[0], self.batch_size)]
        return torch.cat(out).cpu().numpy().astype(np.float64) if out else np.zeros(0)

    def influence_factors(self, X_test, y_test) -> np.ndarray:
        """``(H + damping)^-1 g_t`` for every test point, shape (n_params, n_test).

        In the flat layout of ``param_names_`` (each tensor flattened row-major).
        """
        self._check_fitted()
        X, y = self._test_inputs(X_test, y_test)
        return self._factors(X, y).cpu().numpy().astype(np.float64)

    def influence(self, X_test, y_test, *, train_indices=None) -> np.ndarray:
        """Koh & Liang's ``I_up,loss(z_i, z_t)`` for every training row and test point.

        Parameters
        ----------
        X_test : array-like, tensor or DataLoader
        y_test : array-like or tensor (None with a DataLoader)
        train_indices : array-like of int or bool, default=None
            Training rows to return (all when None).

        Returns
        -------
        ndarray of shape (n_rows, n_test)
            ``-n s_i g_t^T H^-1 g_i``.  Removing row ``i`` changes the loss at ``t`` by
            about ``-influence[i, t] / n``: positive values are harmful rows.
        """
        self._check_fitted()
        if self.engine_ is not None:
            feats, y_enc = self._engine_test(X_test, y_test)
            return self.engine_.influence(feats, y_enc, train_indices=train_indices)
        X, y = self._test_inputs(X_test, y_test)
        rows = self._rows(train_indices)
        self._check_result_size(train_indices, X.shape[0])
        n_rows = self.n_train_ if isinstance(rows, slice) else len(rows)
        out = np.empty((n_rows, X.shape[0]))
        obj = self.objective_
        step = self._test_chunk(X.shape[0])
        for lo in range(0, X.shape[0], step):
            factors = self._factors(X[lo:lo + step], y[lo:lo + step])
            for out_sl, idx in self._row_chunks(rows, self.batch_size):
                Xr, yr = self._train_rows(idx)
                if factors.shape[1] <= FORWARD_MODE_MAX_COLUMNS:
                    products = obj.gradient_products(Xr, yr, factors)
                else:  # many test points: per-sample gradients once, then one product
                    products = obj.sample_gradients(Xr, yr) @ factors
                scale = -self.n_train_ * self._sw[self._index_tensor(idx)].to(self.device_)
                out[out_sl, lo:lo + step] = (scale[:, None] * products).cpu().numpy()
        return out

    def _index_tensor(self, idx):
        return idx if isinstance(idx, slice) else torch.as_tensor(idx, device=self._sw.device)

    def _engine_test(self, X_test, y_test):
        X, y = self._test_inputs(X_test, y_test)
        return self._features(X).cpu().numpy(), self._engine_targets(y)

    def self_influence(self, *, train_indices=None) -> np.ndarray:
        """``I_up,loss(z_i, z_i) = -n s_i g_i^T H^-1 g_i`` (non-positive when ``H`` is PD).

        The paper's score for finding mislabeled rows.  Shape (n_rows,).
        """
        self._check_fitted()
        if self.engine_ is not None:
            return self.engine_.self_influence(train_indices=train_indices)
        rows = self._rows(train_indices)
        n_rows = self.n_train_ if isinstance(rows, slice) else len(rows)
        out = np.empty(n_rows)
        for out_sl, idx in self._row_chunks(rows, self.batch_size):
            Xr, yr = self._train_rows(idx)
            grads = self.objective_.sample_gradients(Xr, yr)
            quad = self.solver_.quadratic_forms(grads.T)
            scale = -self.n_train_ * self._sw[self._index_tensor(idx)].to(self.device_)
            out[out_sl] = (scale * quad).cpu().numpy()
        return out

    def loo_effect(self, X_test, y_test, *, method: str = "influence",
                   train_indices=None) -> np.ndarray:
        """Predicted change in each test loss when each training row is removed.

        Parameters
        ----------
        X_test, y_test : test data
        method : {"influence", "newton"}, default="influence"
            ``"influence"``: ``-influence / n``.  ``"newton"``: one exact Newton step of
            the objective without the row, then the exact test loss; available when the
            numpy engine answers (``params="last_layer"`` with an ``nn.Linear`` head and a
            built-in loss), where it is as cheap as for the linear models.  For a
            network it would need the per-row Hessian (not low rank) and a forward pass
            per removed row, so it is not offered.
        train_indices : array-like, default=None

        Returns
        -------
        ndarray of shape (n_rows, n_test)
        """
        _check_method(method)
        self._check_fitted()
        if self.engine_ is not None:
            feats, y_enc = self._engine_test(X_test, y_test)
            return self.engine_.loo_effect(feats, y_enc, method=method,
                                           train_indices=train_indices)
        self._refuse_newton(method)
        return -self.influence(X_test, y_test, train_indices=train_indices) / self.n_train_

    def self_loo_effect(self, *, method: str = "influence", train_indices=None) -> np.ndarray:
        """Predicted increase of each row's own loss when it is removed, (n_rows,)."""
        _check_method(method)
        self._check_fitted()
        if self.engine_ is not None:
            return self.engine_.self_loo_effect(method=method, train_indices=train_indices)
        self._refuse_newton(method)
        return -self.self_influence(train_indices=train_indices) / self.n_train_

    def _refuse_newton(self, method: str) -> None:
        if method == "newton":
            raise ValueError(
                "method='newton' is available for params='last_layer' with an nn.Linear head "
                "and a built-in loss (an exact Newton step of a convex objective); for other "
                "parameter sets use method='influence'."
            )

    def perturbation_influence(self, X_test, y_test, *, train_indices=None,
                               aggregate: str | None = None) -> np.ndarray:
        """Koh & Liang's ``I_pert,loss``: gradient of test losses in training inputs.

        ``-n s_i grad_x (g_t^T H^-1 grad_theta l(x_i, y_i))``, by a ``jvp`` in the
        parameters inside a ``grad`` in the input.  Moving training row ``i`` by a small
        ``delta`` changes the loss at ``t`` by about ``result[i, t] . delta / n``.

        Parameters
        ----------
        X_test, y_test : test data
        train_indices : array-like, default=None
        aggregate : {None, "sum", "mean"}, default=None
            Reduce over test points.

        Returns
        -------
        ndarray of shape (n_rows, n_test) + input shape, or (n_rows,) + input shape
            when aggregated; for tabular inputs (n_rows, n_test, n_features).
        """
        self._check_fitted()
        if aggregate not in (None, "sum", "mean"):
            raise ValueError(f"aggregate must be None, 'sum' or 'mean', got {aggregate!r}.")
        X, y = self._test_inputs(X_test, y_test)
        factors = self._factors(X, y)
        if aggregate is not None:
            factors = factors.sum(dim=1, keepdim=True)
            if aggregate == "mean":
                factors = factors / max(X.shape[0], 1)
        in_shape = tuple(self._X.shape[1:])
        m = factors.shape[1]
        self._check_result_size(train_indices, m, int(np.prod(in_shape)))
        rows = self._rows(train_indices)
        n_rows = self.n_train_ if isinstance(rows, slice) else len(rows)
        out = np.empty((n_rows, m) + in_shape)
        step = max(1, self.batch_size // max(1, m))
        for out_sl, idx in self._row_chunks(rows, step):
            Xr, yr = self._train_rows(idx, features=False)
            mixed = self._input_objective.mixed_input_gradients(Xr, yr, factors)
            scale = -self.n_train_ * self._sw[self._index_tensor(idx)].to(self.device_)
            out[out_sl] = (scale.reshape((-1,) + (1,) * (mixed.ndim - 1)) * mixed).cpu().numpy()
        return out[:, 0] if aggregate is not None else out

    # the ranking logic only calls loo_effect / self_loo_effect: share the engine's
    rank_training_points = Influence.rank_training_points


def _module_dtype(module: torch.nn.Module) -> torch.dtype:
    for p in module.parameters():
        if p.is_floating_point():
            if p.dtype not in (torch.float32, torch.float64):
                raise ValueError(
                    f"The module's parameters are {p.dtype}; influence needs float32 or "
                    "float64 (call module.float() or module.double())."
                )
            return p.dtype
    raise ValueError("The module has no floating-point parameters.")

