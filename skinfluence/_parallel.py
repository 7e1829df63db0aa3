"""Chunked work under any joblib backend, with results that do not depend on it.

The engine splits its work into chunks whose boundaries depend only on the data's shape
and the memory budget, never on ``n_jobs`` or on the backend.  Each chunk is computed
by the same code wherever it runs (this thread, a thread pool, a process pool, a
``dask.distributed`` worker or a Spark executor through joblibspark), so a parallel
or distributed run returns the same numbers as a serial one, bit for bit.

Tasks receive the engine as an explicit argument: joblib's dask backend scatters an
argument it considers large once per call and every task then refers to the copy on
its worker (the engine reports its size through ``__sizeof__``), instead of pickling
the factorization and the per-row state into every task.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Callable, Iterable, Iterator

from joblib import effective_n_jobs
try:
    from joblib._parallel_backends import ThreadingBackend
except ImportError:  # pragma: no cover - joblib moved it
    from joblib.parallel import ThreadingBackend
from joblib.parallel import get_active_backend
from sklearn.utils.parallel import Parallel, delayed
from threadpoolctl import threadpool_limits

__all__ = ["map_chunks", "serial_section", "in_serial_section", "n_workers", "held_bytes",
           "aligned", "realigned_state", "portable_state"]

_STATE = threading.local()


@contextlib.contextmanager
def serial_section():
    """Run nested chunked work serially (inside a task that is already parallel)."""
    previous = getattr(_STATE, "serial", False)
    _STATE.serial = True
    try:
        yield
    finally:
        _STATE.serial = previous


def in_serial_section() -> bool:
    """Whether this thread runs a chunk of an outer parallel map."""
    return getattr(_STATE, "serial", False)


def n_workers(n_jobs) -> int:
    """Workers that a map would use: 1 inside a task, else joblib's effective count.

    ``n_jobs=None`` follows an active ``joblib.parallel_config``/``parallel_backend``
    (``with parallel_backend("dask"): ...`` uses every worker of the cluster).
    """
    if in_serial_section():
        return 1
    return max(1, int(effective_n_jobs(n_jobs)))


def _run_chunk(func: Callable, state, chunk, *args):
    chunk, args = aligned(chunk), tuple(aligned(arg) for arg in args)
    # a chunk never fans out again: nested maps and CG columns run serially inside it
    with serial_section():
        return func(state, chunk, *args)


def map_chunks(func: Callable, state, chunks: Iterable, *args, n_jobs=None) -> Iterator:
    """Yield ``func(state, chunk, *args)`` for each chunk, in order.

    Parameters
    ----------
    func : callable
        A module-level function (picklable by reference).
    state : object
        Shared by every chunk (the engine); passed as an argument so that a
        distributed backend broadcasts it once instead of once per task.
    chunks : iterable
        Chunk descriptions (slices or index arrays), small.
    *args
        Further arguments shared by every chunk.
    n_jobs : int, default=None
        joblib's ``n_jobs``; None follows the active joblib backend configuration.
    """
    chunks = list(chunks)
    workers = n_workers(n_jobs)
    if workers == 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield func(state, chunk, *args)
        return
    parallel = Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator")
    tasks = (delayed(_run_chunk)(func, state, chunk, *args) for chunk in chunks)
    if not _threads_here():
        yield from parallel(tasks)
        return
    # threads share this process' BLAS pool: give each worker its share of the cores
    inner = max(1, (os.cpu_count() or 1) // workers)
    with threadpool_limits(limits=inner, user_api="blas"):
        yield from parallel(tasks)


def _threads_here() -> bool:
    """Whether the active joblib backend runs tasks in threads of this process."""
    backend, _ = get_active_backend(prefer="threads")
    return isinstance(backend, ThreadingBackend)


def held_bytes(obj, _seen=None, _depth=0) -> int:
    """Bytes of the arrays an object holds (for ``__sizeof__``: what shipping it costs).

    Memory-mapped arrays count for nothing: they are pickled by file name.
    """
    import numpy as np
    import scipy.sparse as sp

    from ._streaming import file_mapping

    seen = set() if _seen is None else _seen
    if id(obj) in seen or _depth > 6:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return 0 if file_mapping(obj) is not None else int(obj.nbytes)
    if sp.issparse(obj):
        return sum(int(getattr(obj, name).nbytes) for name in ("data", "indices", "indptr")
                   if hasattr(obj, name))
    if isinstance(obj, dict):
        items = obj.values()
    elif isinstance(obj, (list, tuple)):
        items = obj
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        items = vars(obj).values()
    else:
        return 0
    return sum(held_bytes(item, seen, _depth + 1) for item in items)


def aligned(obj):
    """``obj`` with misaligned array data copied to aligned memory.

    Unpickled arrays can start at any byte of a message (dask.distributed places
    small ones inside its frames).  NumPy computes on such data without BLAS, with
    another summation order: copying them keeps a worker's arithmetic the same as
    the local one.  Aligned arrays and other objects are returned unchanged.
    """
    import numpy as np
    import scipy.sparse as sp

    if isinstance(obj, np.ndarray):
        return obj if obj.flags.aligned else obj.copy(order="K")
    if sp.issparse(obj):
        for name in ("data", "indices", "indptr", "row", "col"):
            part = getattr(obj, name, None)
            if isinstance(part, np.ndarray) and not part.flags.aligned:
                setattr(obj, name, part.copy())
        return obj
    if isinstance(obj, tuple):
        return tuple(aligned(item) for item in obj)
    if isinstance(obj, list):
        return [aligned(item) for item in obj]
    return obj


def realigned_state(state: dict) -> dict:
    """A ``__setstate__`` dictionary with every array aligned (see :func:`aligned`)."""
    return {name: aligned(value) for name, value in state.items()}


def _is_local_function(value) -> bool:
    import types

    qualname = getattr(value, "__qualname__", "")
    return isinstance(value, types.FunctionType) and ("<locals>" in qualname
                                                      or "<lambda>" in qualname)


class _ByValue:
    """A closure pickled by value: the standard pickle can only name module functions."""

    def __init__(self, func):
        self.func = func

    def __reduce__(self):
        try:
            import cloudpickle  # a dependency of joblib >= 1.5
        except ImportError:  # pragma: no cover - older joblib ship it inside
            from joblib.externals import cloudpickle
        return _loads_by_value, (cloudpickle.dumps(self.func),)


def _loads_by_value(payload: bytes):
    import pickle

    return pickle.loads(payload)


def portable_state(state: dict) -> dict:
    """A ``__getstate__`` dictionary whose closures pickle (by value, with cloudpickle).

    The estimators' builders give objectives closures (``featurize``,
    ``encode_target``); everything else, arrays above all, keeps the standard protocol
    (and with it pickle 5's out-of-band buffers, which dask uses to avoid copies).
    """
    return {name: _ByValue(value) if _is_local_function(value) else value
            for name, value in state.items()}
