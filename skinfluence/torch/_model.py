"""A torch module as a fitted objective: per-sample gradients and exact HVPs.

:class:`TorchObjective` is the torch counterpart of
:class:`skinfluence.objective.GLMObjective`: it is the objective

.. math::

    J(\\theta) = \\sum_i s_i \\, \\ell(y_i, f(x_i; \\theta))
                 + \\tfrac12 \\sum_j \\lambda_j \\theta_j^2 ,
    \\qquad \\lambda_j = n \\cdot \\mathrm{weight\\_decay}_j ,

at the fitted ``theta`` (the chosen parameters flattened in ``named_parameters``
order), and it is a *Hessian operator* in the sense of :mod:`skinfluence.solvers`:
``n_params``, ``n_samples``, ``hessp(V, index=None, data_scale=1.0)``, ``hessian()``,
``null_space()`` -- on torch tensors, on the module's device.

Per-sample gradients are ``vmap(grad(loss))``; Hessian-vector products are exact,
forward-over-reverse (``jvp`` of ``grad``), vmapped over a block of vectors.  Rows and
vectors are processed in chunks so that memory stays bounded.
"""

from __future__ import annotations

import fnmatch
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, jvp, vmap

__all__ = [
    "LOSSES",
    "make_loss",
    "select_parameters",
    "resolve_weight_decay",
    "FunctionalModel",
    "TorchObjective",
    "last_layer",
]

LOSSES = ("cross_entropy", "bce_with_logits", "mse")

#: vectors per vmapped HVP (bounded memory: activations are held once per vector)
TANGENT_CHUNK = 32


# --------------------------------------------------------------------------- losses
def _cross_entropy(out, y):
    return F.cross_entropy(out.reshape(out.shape[0], -1), y, reduction="none")


def _bce_with_logits(out, y):
    return F.binary_cross_entropy_with_logits(out.reshape(-1), y.reshape(-1), reduction="none")


def _half_squared_error(out, y):
    resid = out.reshape(out.shape[0], -1) - y.reshape(y.shape[0], -1)
    return 0.5 * (resid * resid).sum(dim=1)


_LOSS_FUNCTIONS = {
    "cross_entropy": _cross_entropy,
    "bce_with_logits": _bce_with_logits,
    "mse": _half_squared_error,
}


def make_loss(loss) -> Callable:
    """Per-sample loss ``loss(outputs, targets) -> (batch,)`` from a name or a callable."""
    if callable(loss):
        return loss
    try:
        return _LOSS_FUNCTIONS[loss]
    except (KeyError, TypeError):
        raise ValueError(
            f"loss must be one of {LOSSES} or a callable, got {loss!r}."
        ) from None


# --------------------------------------------------------------------------- parameters
def last_layer(module: torch.nn.Module, example: torch.Tensor) -> str:
    """Name of the last leaf module with trainable parameters *run* in ``forward``.

    Execution order is observed with forward hooks on one example batch, so modules
    registered out of order are handled.
    """
    called: list[str] = []
    handles = []
    for name, sub in module.named_modules():
        has_own = any(p.requires_grad for p in sub.parameters(recurse=False))
        if has_own:
            handles.append(sub.register_forward_hook(
                lambda *_, _name=name: called.append(_name)))
    try:
        with torch.no_grad():
            module(example)
    finally:
        for handle in handles:
            handle.remove()
    if not called:
        raise ValueError("The module has no trainable parameters used in forward.")
    return called[-1]


def select_parameters(module: torch.nn.Module, params, example: torch.Tensor) -> list[str]:
    """Names of the parameters influence is computed over, in ``named_parameters`` order.

    ``"all"``: every parameter with ``requires_grad``; ``"last_layer"``: those of the last
    layer run in ``forward``; a list: parameter names, or module names standing for all
    of their parameters.
    """
    named = [(n, p) for n, p in module.named_parameters()]
    if isinstance(params, str) and params == "all":
        names = [n for n, p in named if p.requires_grad]
    elif isinstance(params, str) and params == "last_layer":
        prefix = last_layer(module, example)
        head = prefix + "." if prefix else ""
        names = [n for n, p in named if p.requires_grad and n.startswith(head)
                 and "." not in n[len(head):]]
    elif isinstance(params, (list, tuple)) and params:
        all_names = [n for n, _ in named]
        names = []
        for wanted in params:
            if not isinstance(wanted, str):
                raise ValueError(f"params entries must be names, got {wanted!r}.")
            hits = [n for n in all_names if n == wanted or n.startswith(wanted + ".")]
            if not hits:
                raise ValueError(
                    f"params names {wanted!r}, which is neither a parameter nor a module of "
                    f"this model; parameters are {all_names}."
                )
            names.extend(h for h in hits if h not in names)
        names = [n for n in all_names if n in names]
    else:
        raise ValueError(
            f"params must be 'all', 'last_layer' or a non-empty list of names, got {params!r}."
        )
    if not names:
        raise ValueError("No trainable parameters were selected.")
    return names


def resolve_weight_decay(weight_decay, names: list[str]) -> dict[str, float]:
    """The L2 strength of each chosen parameter tensor.

    A number applies to every parameter.  A dict maps ``fnmatch`` patterns of parameter
    names to strengths; each parameter takes the first pattern it matches, and 0 (no
    penalty) when it matches none, e.g. ``{"*bias": 0.0, "*": 1e-4}``.
    """
    if isinstance(weight_decay, dict):
        out = {}
        used = set()
        for name in names:
            out[name] = 0.0
            for pattern, value in weight_decay.items():
                if fnmatch.fnmatchcase(name, pattern):
                    out[name] = float(value)
                    used.add(pattern)
                    break
        unused = [p for p in weight_decay if p not in used]
        if unused:
            raise ValueError(
                f"weight_decay patterns {unused} match none of the chosen parameters {names}."
            )
    else:
        try:
            value = float(weight_decay)
        except (TypeError, ValueError):
            raise ValueError(
                f"weight_decay must be a number or a dict of patterns, got {weight_decay!r}."
            ) from None
        out = {name: value for name in names}
    for name, value in out.items():
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"weight_decay for {name!r} must be finite and >= 0, got {value}.")
    return out


class FunctionalModel:
    """A module as a pure function ``f(theta_flat, inputs)`` of the chosen parameters.

    The other parameters and the buffers are frozen at their current values.
    """

    def __init__(self, module: torch.nn.Module, names: list[str]):
        params = dict(module.named_parameters())
        self.module = module
        self.names = list(names)
        self.shapes = [params[n].shape for n in names]
        self.numels = [params[n].numel() for n in names]
        self.offsets = np.concatenate([[0], np.cumsum(self.numels)]).astype(int).tolist()
        self.theta = torch.cat([params[n].detach().reshape(-1) for n in names])
        frozen = {n: p.detach() for n, p in params.items() if n not in set(names)}
        frozen.update({n: b for n, b in module.named_buffers()})
        self.frozen = frozen

    @property
    def n_params(self) -> int:
        return self.offsets[-1]

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            name: flat[lo:hi].view(shape)
            for name, shape, lo, hi in zip(self.names, self.shapes, self.offsets[:-1],
                                           self.offsets[1:])
        }

    def __call__(self, flat: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        return functional_call(self.module, {**self.frozen, **self.unflatten(flat)}, (inputs,))


class TorchObjective:
    """The training objective of a module at its fit, as a Hessian operator.

    Parameters
    ----------
    model : FunctionalModel
        The module as a function of the chosen parameters.
    loss_fn : callable
        ``loss_fn(outputs, targets) -> (batch,)`` per-sample losses.
    X, y : tensors
        Training inputs and targets (rows first).
    sample_weight : tensor of shape (n_samples,)
        ``s_i``.
    penalty : tensor of shape (n_params,)
        ``lambda_j`` (``n * weight_decay`` of the parameter's tensor).
    device : torch.device
    batch_size : int
        Rows per vmapped chunk.
    """

    def __init__(self, model: FunctionalModel, loss_fn: Callable, X: torch.Tensor,
                 y: torch.Tensor, sample_weight: torch.Tensor, penalty: torch.Tensor,
                 *, device: torch.device, batch_size: int):
        self.model = model
        self.loss_fn = loss_fn
        self.X, self.y = X, y
        # kept beside X so that one index selects rows of both
        self.sample_weight = sample_weight.to(X.device)
        self.penalty = penalty
        self.device = device
        self.batch_size = int(batch_size)
        self.dtype = model.theta.dtype
        self._null = torch.zeros(model.n_params, 0, dtype=self.dtype, device=device)

    # ------------------------------------------------------------------ layout
    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_params(self) -> int:
        return self.model.n_params

    @property
    def theta(self) -> torch.Tensor:
        return self.model.theta

    def null_space(self) -> torch.Tensor:
        """Orthonormal basis (n_params, r) of exact null directions of ``H``."""
        return self._null

    def set_null_space(self, basis: torch.Tensor) -> None:
        self._null = basis

    # ------------------------------------------------------------------ rows
    def batches(self, index=None) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``(X, y, s)`` chunks on the device, over all rows or the given ones."""
        n = self.n_samples if index is None else len(index)
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            if index is None:
                sel = slice(start, stop)
            else:
                sel = torch.as_tensor(np.asarray(index[start:stop]), dtype=torch.long,
                                      device=self.X.device)
            yield (self.X[sel].to(self.device), self.y[sel].to(self.device),
                   self.sample_weight[sel].to(self.device))

    # ------------------------------------------------------------------ values
    def sample_loss(self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Loss of one row (no batch dimension in ``x`` and ``y``)."""
        return self.loss_fn(self.model(flat, x.unsqueeze(0)), y.unsqueeze(0))[0]

    def losses(self, X: torch.Tensor, y: torch.Tensor, flat=None) -> torch.Tensor:
        flat = self.theta if flat is None else flat
        with torch.no_grad():
            return self.loss_fn(self.model(flat, X), y).reshape(-1)

    def _weighted_sum(self, flat, X, y, s):
        return torch.dot(s, self.loss_fn(self.model(flat, X), y).reshape(-1))

    # ------------------------------------------------------------------ derivatives
    def sample_gradients(self, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Unweighted per-sample gradients ``grad_theta l(z_i)``, shape (n_rows, n_params)."""
        per_row = vmap(grad(self.sample_loss), in_dims=(None, 0, 0))
        chunks = [per_row(self.theta, X[i:i + self.batch_size], y[i:i + self.batch_size])
                  for i in range(0, X.shape[0], self.batch_size)]
        if not chunks:
            return torch.zeros(0, self.n_params, dtype=self.dtype, device=self.device)
        return torch.cat(chunks).detach()

    def gradient_products(self, X: torch.Tensor, y: torch.Tensor,
                          V: torch.Tensor) -> torch.Tensor:
        """``v_t^T grad_theta l(z_i)`` for rows ``i`` and columns ``t`` of ``V``: (n_rows, m).

        Forward mode: each column is the directional derivative of the rows' losses, one
        ``jvp`` through a batched forward pass (vmapped over columns).  It never forms
        the per-sample gradients (``n_rows x n_params`` numbers), so for a few columns
        it costs a few forward passes instead of a per-sample backward pass.
        """
        V = V.to(device=self.device, dtype=self.dtype)
        theta = self.theta
        chunks = []
        for i in range(0, X.shape[0], self.batch_size):
            Xc, yc = X[i:i + self.batch_size], y[i:i + self.batch_size]

            def directional(v, Xc=Xc, yc=yc):
                return jvp(lambda flat: self.loss_fn(self.model(flat, Xc), yc).reshape(-1),
                           (theta,), (v,))[1]

            per_column = vmap(directional, in_dims=1, out_dims=1)
            chunks.append(torch.cat([per_column(V[:, lo:lo + TANGENT_CHUNK])
                                     for lo in range(0, V.shape[1], TANGENT_CHUNK)], dim=1))
        if not chunks:
            return torch.zeros(0, V.shape[1], dtype=self.dtype, device=self.device)
        return torch.cat(chunks).detach()

    def gradient(self) -> torch.Tensor:
        """Gradient of ``J`` at the fit, shape (n_params,)."""
        total = self.penalty * self.theta
        g = grad(self._weighted_sum)
        for X, y, s in self.batches():
            total = total + g(self.theta, X, y, s)
        return total.detach()

    def hessp(self, V: torch.Tensor, index=None, data_scale: float = 1.0) -> torch.Tensor:
        """``H @ V`` for a block ``V`` of shape (n_params, m), exact (forward-over-reverse).

        With ``index`` the data term uses those rows only, times ``data_scale`` (the
        mini-batch Hessian estimate of LiSSA).
        """
        vec = V.ndim == 1
        V2 = V[:, None] if vec else V
        V2 = V2.to(device=self.device, dtype=self.dtype)
        out = torch.zeros_like(V2)
        grad_fn = grad(self._weighted_sum)
        theta = self.theta
        for X, y, s in self.batches(index):
            def directional(v, X=X, y=y, s=s):
                return jvp(lambda flat: grad_fn(flat, X, y, s), (theta,), (v,))[1]

            block_hvp = vmap(directional, in_dims=1, out_dims=1)
            for lo in range(0, V2.shape[1], TANGENT_CHUNK):
                out[:, lo:lo + TANGENT_CHUNK] += block_hvp(V2[:, lo:lo + TANGENT_CHUNK])
        if data_scale != 1.0:
            out *= data_scale
        out += self.penalty[:, None] * V2
        out = out.detach()
        return out[:, 0] if vec else out

    def hessian(self) -> torch.Tensor:
        """Dense Hessian of ``J`` (n_params, n_params), built from blocks of HVPs."""
        P = self.n_params
        hess = torch.empty(P, P, dtype=self.dtype, device=self.device)
        block = max(TANGENT_CHUNK, 1)
        for lo in range(0, P, block):
            hi = min(lo + block, P)
            eye = torch.zeros(P, hi - lo, dtype=self.dtype, device=self.device)
            eye[torch.arange(lo, hi), torch.arange(hi - lo)] = 1.0
            hess[:, lo:hi] = self.hessp(eye)
        return 0.5 * (hess + hess.T)

    def mixed_input_gradients(self, X: torch.Tensor, y: torch.Tensor,
                              V: torch.Tensor) -> torch.Tensor:
        """``grad_x (v_t^T grad_theta l(x_i, y_i))`` for rows i and columns t of ``V``.

        Shape (n_rows, m) + input shape: the building block of ``I_pert,loss``.
        """
        theta = self.theta

        def one(x, y_row, v):
            def directional(x_in):
                return jvp(lambda flat: self.sample_loss(flat, x_in, y_row), (theta,), (v,))[1]

            return grad(directional)(x)

        per_vector = vmap(one, in_dims=(None, None, 1))
        per_row = vmap(per_vector, in_dims=(0, 0, None))
        chunk = max(1, self.batch_size // max(1, min(V.shape[1], TANGENT_CHUNK)))
        parts = [per_row(X[i:i + chunk], y[i:i + chunk], V) for i in range(0, X.shape[0], chunk)]
        return torch.cat(parts).detach()

    # ------------------------------------------------------------------ null space
    def detect_softmax_null_space(self, n_outputs: int) -> torch.Tensor:
        """Exact null directions of a shift-invariant (softmax) loss.

        Adding the same amount to every output of an affine output layer changes no
        softmax probability: with its bias (or a column of its weight) unpenalized,
        ``1_K (x) e_j`` on those coordinates is a null direction of ``H`` and no
        gradient has a component along it.  Candidates are the unpenalized biases and
        weight columns of the ``nn.Linear`` layers with ``K`` outputs among the chosen
        parameters; each is kept only if, on every training row, moving along it changes
        all ``K`` outputs by the same amount (checked with a ``jvp``).
        """
        model = self.model
        K = n_outputs
        index = {name: i for i, name in enumerate(model.names)}
        candidates = []
        for mod_name, sub in model.module.named_modules():
            if not isinstance(sub, torch.nn.Linear) or sub.out_features != K:
                continue
            prefix = mod_name + "." if mod_name else ""
            for kind in ("bias", "weight"):
                name = prefix + kind
                if name not in index:
                    continue
                lo = model.offsets[index[name]]
                if torch.any(self.penalty[lo:lo + model.numels[index[name]]] != 0):
                    continue
                cols = 1 if kind == "bias" else sub.in_features
                for j in range(cols):
                    # bias: entries lo..lo+K; weight (K, d) row-major: lo + k*d + j
                    rows = lo + torch.arange(K) * cols + j
                    candidates.append(rows)
        if not candidates:
            return self._null
        basis = torch.zeros(self.n_params, len(candidates), dtype=self.dtype, device=self.device)
        for c, rows in enumerate(candidates):
            basis[rows.to(self.device), c] = 1.0 / np.sqrt(K)
        keep = self._constant_shift(basis)
        return basis[:, keep]

    def _constant_shift(self, basis: torch.Tensor) -> torch.Tensor:
        """Columns of ``basis`` along which every row's outputs move by a common amount."""
        theta = self.theta
        eps = torch.finfo(self.dtype).eps
        keep = torch.ones(basis.shape[1], dtype=torch.bool, device=self.device)
        for X, _, _ in self.batches():
            def move(v, X=X):
                return jvp(lambda flat: self.model(flat, X), (theta,), (v,))[1]

            for lo in range(0, basis.shape[1], TANGENT_CHUNK):
                d = vmap(move, in_dims=1)(basis[:, lo:lo + TANGENT_CHUNK])
                d = d.reshape(d.shape[0], d.shape[1], -1)
                spread = (d - d.mean(dim=2, keepdim=True)).abs().amax(dim=(1, 2))
                scale = d.abs().amax(dim=(1, 2)) + 1.0
                keep[lo:lo + TANGENT_CHUNK] &= spread <= 1e3 * eps * scale
        return keep
