"""Embedding inputs for alignment: arrays or memory-mapped ``.npy`` files, streamed in checked,
unit-normalised float64 chunks (spec alignment-methods 0: NaN/Inf and zero rows are hard errors)."""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from modgap.errors import InvalidEmbeddingsError
from modgap.stats.moments import iter_chunks, open_embeddings
from modgap.validate import check_embeddings

# The authors' chunk (spec 0 "Streaming"); small enough that a float64 copy stays in cache-friendly MBs.
DEFAULT_CHUNK_ROWS = 10_000
# Rows hashed for a fingerprint: hashing every byte of a 5 GB file would cost more than the fit itself.
FINGERPRINT_ROWS = 257

SourceLike = str | os.PathLike[str] | np.ndarray


def unit_rows(block: np.ndarray, name: str = "embeddings", start_row: int = 0) -> np.ndarray:
    """Float64 copy of ``block`` with unit-norm rows; NaN/Inf or zero rows raise with the row number."""
    x = np.array(block, dtype=np.float64)  # a copy: normalised in place below
    sq = np.einsum("ij,ij->i", x, x)
    if not np.all(np.isfinite(sq)) or not np.all(sq > 0):
        check_embeddings(np.asarray(block), name, start_row=start_row)  # raises for NaN/Inf/zero
        # Finite input whose squared norm overflowed: the authors' max-abs guard (spec 1.3).
        x = x / np.abs(x).max(axis=1, keepdims=True)
        sq = np.einsum("ij,ij->i", x, x)
    x /= np.sqrt(sq)[:, None]
    return x


def unit_rows_unchecked(x: np.ndarray) -> np.ndarray:
    """Normalise float64 rows in place-free form, leaving (exactly) zero rows at zero."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    norms[norms == 0] = 1.0
    return x / norms[:, None]


def release_pages(array: np.ndarray, start_row: int, stop_row: int) -> None:
    """Drop rows [start_row, stop_row) of a read-only ``np.memmap`` from this process's resident set.

    The pages stay in the OS page cache; without this a streaming pass over a memory-mapped file
    would show O(file) resident memory although it only ever holds one chunk (best effort: no-op
    for in-memory arrays or platforms without madvise).
    """
    mm = getattr(array, "_mmap", None)
    if mm is None or not hasattr(mmap, "MADV_DONTNEED") or array.ndim != 2:
        return
    row_bytes = array.shape[1] * array.dtype.itemsize
    base = int(array.offset) % mmap.ALLOCATIONGRANULARITY  # where numpy's mapping puts row 0
    lo = base + start_row * row_bytes
    hi = base + stop_row * row_bytes
    lo = -(-lo // mmap.PAGESIZE) * mmap.PAGESIZE  # whole pages inside the range only
    hi = hi // mmap.PAGESIZE * mmap.PAGESIZE
    if hi > lo:
        with contextlib.suppress(OSError, ValueError):
            mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


def raw_chunks(array: np.ndarray, chunk_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """``iter_chunks`` that also releases each chunk's mapped pages once the caller is done with it."""
    for start, block in iter_chunks(array, chunk_rows):
        yield start, block
        release_pages(array, start, start + block.shape[0])


class EmbeddingSource:
    """An (n, d) float embedding matrix that is read chunk by chunk and never loaded whole."""

    def __init__(self, source: SourceLike, name: str, *, dim: int | None = None, min_rows: int = 1):
        self.path = None if isinstance(source, np.ndarray) else Path(source)
        self.name = f"{name} ({self.path})" if self.path is not None else name
        try:
            self.array = open_embeddings(source)
        except ValueError as exc:
            raise InvalidEmbeddingsError(f"{self.name}: cannot read as .npy: {exc}") from exc
        if self.array.ndim != 2:
            raise InvalidEmbeddingsError(f"{self.name}: expected a 2-D (n, d) array, got shape {self.array.shape}")
        if not np.issubdtype(self.array.dtype, np.floating):
            raise InvalidEmbeddingsError(f"{self.name}: expected a floating-point array, got {self.array.dtype}")
        self.n, self.dim = (int(s) for s in self.array.shape)
        if dim is not None and self.dim != dim:
            raise InvalidEmbeddingsError(f"{self.name}: expected dimension {dim}, got {self.dim}")
        if self.n < min_rows:
            raise InvalidEmbeddingsError(f"{self.name}: needs at least {min_rows} rows, got {self.n}")

    def chunks(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start_row, unit-norm float64 block)``."""
        for start, block in raw_chunks(self.array, chunk_rows):
            yield start, unit_rows(block, self.name, start)

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Unit-norm float64 copy of selected rows (for subsamples such as memories or training sets)."""
        index = np.sort(np.asarray(index))
        return unit_rows(np.asarray(self.array[index]), self.name)

    def fingerprint(self) -> dict[str, Any]:
        """Shape, dtype and sha256 of the shape plus evenly spaced rows (and file size/mtime for paths)."""
        digest = hashlib.sha256(f"{self.array.shape}{self.array.dtype}".encode())
        index = np.unique(np.linspace(0, self.n - 1, min(self.n, FINGERPRINT_ROWS)).astype(np.int64))
        digest.update(np.ascontiguousarray(self.array[index]).tobytes())
        release_pages(self.array, 0, self.n)  # fault-around mapped far more than the sampled rows
        out: dict[str, Any] = {
            "shape": list(self.array.shape),
            "dtype": str(self.array.dtype),
            "sha256_sampled_rows": digest.hexdigest(),
        }
        if self.path is not None:
            stat = self.path.stat()
            out.update(path=str(self.path), size_bytes=stat.st_size)
        return out
