"""Inputs of the torch backend: numpy arrays, tensors or a ``DataLoader`` -> tensors."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

__all__ = ["as_tensors", "resolve_device"]

#: training inputs up to this size are kept on the compute device between passes
DEVICE_CACHE_BYTES = 512 * 2**20


def resolve_device(device, module: torch.nn.Module) -> torch.device:
    """``device`` if given; else the module's device when it is not the CPU; else CUDA
    when available, the CPU otherwise."""
    if device is not None:
        return torch.device(device)
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.device.type != "cpu":
            return tensor.device
        break
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _loader_to_tensors(loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(loader.sampler, RandomSampler):
        raise ValueError(
            "The DataLoader shuffles its rows (shuffle=True): influence refers to training "
            "rows by position, so pass a loader with shuffle=False."
        )
    xs, ys = [], []
    for batch in loader:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ValueError(
                "A DataLoader passed to skinfluence.torch must yield (inputs, targets) pairs."
            )
        xs.append(torch.as_tensor(batch[0]))
        ys.append(torch.as_tensor(batch[1]))
    if not xs:
        raise ValueError("The DataLoader yielded no rows.")
    return torch.cat(xs), torch.cat(ys)


def as_tensors(X, y, *, dtype: torch.dtype, target_dtype: torch.dtype | None,
               name: str = "X"):
    """Inputs as ``dtype`` and targets as ``target_dtype`` tensors (rows first).

    ``target_dtype=None`` keeps integer targets as ``long`` and casts floating ones to
    ``dtype`` (for a callable loss, which may take either).

    ``X`` may be a numpy array, a tensor or a ``DataLoader`` yielding ``(inputs,
    targets)`` (then ``y`` must be None).  Tensors stay on their device; numpy arrays
    land on the CPU.
    """
    if isinstance(X, DataLoader):
        if y is not None:
            raise ValueError(f"Pass either a DataLoader as {name} or {name} and y, not both.")
        X, y = _loader_to_tensors(X)
    if y is None:
        raise ValueError(f"y is required with {name}.")
    X = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X)
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
    if X.ndim == 0:
        raise ValueError(f"{name} must have a leading row dimension, got a scalar.")
    if y.ndim == 0 or y.shape[0] != X.shape[0]:
        raise ValueError(
            f"{name} has {X.shape[0]} rows but y has shape {tuple(y.shape)}."
        )
    if not torch.is_floating_point(X) or X.dtype != dtype:
        X = X.to(dtype)
    if target_dtype is None:
        target_dtype = dtype if torch.is_floating_point(y) else torch.long
    if target_dtype.is_floating_point:
        y = y.to(target_dtype)
    else:
        if torch.is_floating_point(y) and not torch.equal(y, y.round()):
            raise ValueError("Class targets must be integers (class indices 0 .. K-1).")
        y = y.to(target_dtype)
    return X, y


def place(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Keep small data on the compute device; large data stays where it is."""
    if tensor.device == device:
        return tensor
    if tensor.element_size() * tensor.nelement() <= DEVICE_CACHE_BYTES:
        return tensor.to(device)
    return tensor
