"""Training data larger than memory: memory-mapped files and dask arrays.

Two kinds of input are *streamed*, read one chunk of rows at a time and never loaded
whole:

- a NumPy array backed by a file mapping (:class:`numpy.memmap`, ``np.load(...,
  mmap_mode="r")``, ``joblib.load(..., mmap_mode="r")``, or any view of one);
- a dask array (each chunk of rows is computed when it is needed).

Reading a memory-mapped file maps its pages into the process, and mapped pages count
in its resident memory (RSS) until the mapping goes away: a full pass over a 8 GB
file would leave 8 GB "resident" although every page is a clean copy of the file.  The
engine therefore gives the pages of each chunk back (``madvise(MADV_DONTNEED)``) once
the chunk is processed.  The data stays in the kernel's page cache, so reading it again
costs no disk access when memory allows; it just does not count against the process.
This is only done for shared mappings (modes ``"r"``, ``"r+"``, ``"w+"``): for a
copy-on-write mapping (``"c"``) it would discard the caller's in-memory edits.

A memory-mapped array is pickled *by reference* (file name, offset, shape, strides)
when its mapping is shared, so shipping the engine to another process or to a dask
worker on the same file system sends no data; the worker maps the same file.
"""

from __future__ import annotations

import mmap
import os

import numpy as np

__all__ = [
    "is_dask_array",
    "file_mapping",
    "is_streamed",
    "release_rows",
    "to_numpy",
    "FileArrayReference",
    "picklable_reference",
]

#: modes of a shared mapping: the file holds exactly what the array shows
_SHARED_MODES = ("r", "r+", "w+", "readonly", "readwrite", "write")


def is_dask_array(X) -> bool:
    """Whether ``X`` is a dask array (without importing dask)."""
    return type(X).__module__.startswith("dask.array") and hasattr(X, "compute") \
        and hasattr(X, "chunks")


def file_mapping(X):
    """``(root memmap, mmap object)`` when ``X`` is a view of a file mapping, else None."""
    obj = X
    while isinstance(obj, np.ndarray):
        base = obj.base
        if isinstance(base, mmap.mmap):
            return obj, base
        obj = base
    return None


def is_streamed(X) -> bool:
    """Whether ``X`` is read chunk by chunk (memory-mapped file or dask array)."""
    if is_dask_array(X):
        return True
    return isinstance(X, np.ndarray) and file_mapping(X) is not None


def _shared(root) -> bool:
    return getattr(root, "mode", None) in _SHARED_MODES and getattr(root, "filename", None)


def _row_span(X: np.ndarray, rows) -> tuple[int, int] | None:
    """Addresses ``[first, end)`` spanned by some rows of ``X`` (None if there are none)."""
    if X.ndim == 0 or X.size == 0:
        return None
    if isinstance(rows, slice):
        start, stop, _ = rows.indices(X.shape[0])
        if stop <= start:
            return None
        first_row, last_row = start, stop - 1
    else:
        rows = np.asarray(rows)
        if rows.size == 0:
            return None
        first_row, last_row = int(rows.min()), int(rows.max())
    if any(s < 0 for s in X.strides):
        return None
    row_extent = sum((n - 1) * s for n, s in zip(X.shape[1:], X.strides[1:])) + X.itemsize
    first = X.ctypes.data + first_row * X.strides[0]
    end = X.ctypes.data + last_row * X.strides[0] + row_extent
    return first, end


def release_rows(X, rows) -> None:
    """Give back the pages holding some rows of a memory-mapped ``X`` (no-op otherwise).

    Only the process's mapping is dropped: the data stays valid (it is read again from
    the page cache or the file on the next access) and the file is untouched.
    """
    if not isinstance(X, np.ndarray):
        return
    found = file_mapping(X)
    if found is None:
        return
    root, mapping = found
    if not _shared(root) or not hasattr(mapping, "madvise"):
        return
    span = _row_span(X, rows)
    if span is None:
        return
    # the mapping starts at the allocation boundary below the array's file offset
    mapping_start = root.ctypes.data - int(root.offset) % mmap.ALLOCATIONGRANULARITY
    low = max(span[0] - mapping_start, 0)
    high = min(span[1] - mapping_start, len(mapping))
    low -= low % mmap.PAGESIZE
    if high <= low:
        return
    try:
        mapping.madvise(mmap.MADV_DONTNEED, low, high - low)
    except (OSError, ValueError):  # pragma: no cover - e.g. a closed mapping
        pass


def to_numpy(block) -> np.ndarray:
    """A chunk as a NumPy array (computing it when it is a dask array)."""
    if is_dask_array(block):
        block = block.compute()
    return np.asarray(block)


class FileArrayReference:
    """A memory-mapped array pickled as its file name and layout, not its data.

    Parameters
    ----------
    X : ndarray
        A view of a shared file mapping with non-negative strides.
    """

    def __init__(self, X: np.ndarray):
        root, _ = file_mapping(X)
        self.filename = os.fspath(root.filename)
        self.file_offset = int(root.offset)
        self.file_bytes = int(root.nbytes)
        self.byte_offset = int(X.ctypes.data - root.ctypes.data)
        self.shape = tuple(X.shape)
        self.strides = tuple(X.strides)
        self.dtype = X.dtype

    def open(self) -> np.ndarray:
        """Map the file again (read-only) and rebuild the view."""
        raw = np.memmap(self.filename, dtype=np.uint8, mode="r", offset=self.file_offset,
                        shape=(self.file_bytes,))
        return np.ndarray(self.shape, dtype=self.dtype, buffer=raw, offset=self.byte_offset,
                          strides=self.strides)


def picklable_reference(X):
    """A :class:`FileArrayReference` for a shared memory-mapped view, else ``X`` itself."""
    if not isinstance(X, np.ndarray):
        return X
    found = file_mapping(X)
    if found is None or not _shared(found[0]) or any(s < 0 for s in X.strides):
        return X
    if X.ctypes.data < found[0].ctypes.data:
        return X
    return FileArrayReference(X)
