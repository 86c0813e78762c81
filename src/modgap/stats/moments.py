"""Streaming first and second moments of embedding matrices (float64, O(d^2) memory).

This is the one implementation of means and covariances that every stage (gap statistics,
alignment methods, diagnostics) uses. Rows are optionally re-normalised to unit L2 norm, as both
papers assume (spec gap-theory 0.3). Sums are taken around a fixed shift (the first chunk's mean)
so that the covariance does not suffer from catastrophic cancellation when the mean is large
relative to the spread, which is the normal case for modality-gapped embeddings.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from modgap.errors import InvalidEmbeddingsError
from modgap.validate import check_embeddings, open_embeddings

DEFAULT_CHUNK_ROWS = 16384
_TILE_ROWS = 256  # 256 x 1280 float64 = 2.6 MB: stays in cache between conversion, norms and sum


def iter_chunks(
    source: str | os.PathLike[str] | np.ndarray, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start_row, chunk)`` blocks of at most ``chunk_rows`` rows."""
    array = open_embeddings(source)
    for start in range(0, array.shape[0], chunk_rows):
        yield start, np.asarray(array[start : start + chunk_rows])


@dataclass
class MomentAccumulator:
    """Running count, mean and (population, 1/n) covariance of a stream of row blocks.

    ``normalise`` re-normalises each row to unit norm before accumulation; ``name`` is used in
    error messages. ``with_cov=False`` keeps only the mean (O(d) memory and time per row).
    ``gemm_dtype=np.float32`` computes each chunk's scatter matrix with a float32 GEMM (about 2x
    faster; the chunk is already centred on the shift, so the relative error stays ~1e-7) while
    sums across chunks stay float64. The default, float64, is exact to round-off.
    """

    dim: int
    name: str = "embeddings"
    normalise: bool = True
    with_cov: bool = True
    gemm_dtype: type = np.float64
    n: int = 0
    _shift: np.ndarray | None = field(default=None, repr=False)
    _sum: np.ndarray | None = field(default=None, repr=False)
    _scatter: np.ndarray | None = field(default=None, repr=False)

    def update(self, chunk: np.ndarray, start_row: int = 0) -> MomentAccumulator:
        if chunk.ndim != 2 or chunk.shape[1] != self.dim or not np.issubdtype(chunk.dtype, np.floating):
            check_embeddings(chunk, self.name, dim=self.dim, start_row=start_row)  # raises with details
        if chunk.shape[0] == 0:
            check_embeddings(chunk, self.name, dim=self.dim, start_row=start_row)
        if not self.with_cov:
            return self._update_mean(chunk, start_row)
        block = np.array(chunk, dtype=np.float64, order="C")  # one private float64 copy, edited in place
        sq = np.einsum("ij,ij->i", block, block)
        self._check_norms(sq, chunk, start_row)
        if self.normalise:
            block /= np.sqrt(sq)[:, None]
        if self._shift is None:
            self._shift = block.mean(axis=0)
            self._sum = np.zeros(self.dim)
            self._scatter = np.zeros((self.dim, self.dim))
        block -= self._shift
        self._sum += block.sum(axis=0)
        if self.gemm_dtype == np.float64:
            self._scatter += block.T @ block
        else:
            low = block.astype(self.gemm_dtype)
            self._scatter += low.T @ low
        self.n += block.shape[0]
        return self

    def _check_norms(self, sq: np.ndarray, chunk: np.ndarray, start_row: int) -> None:
        # Squared row norms double as the NaN/Inf/zero-row check (one pass instead of three); the
        # detailed check, which names the offending row, only runs when something is wrong.
        # Un-normalised streams (e.g. paired differences x - y) may legitimately contain zero rows.
        if not np.isfinite(sq).all() or (self.normalise and not sq.all()):
            check_embeddings(chunk, self.name, dim=self.dim, start_row=start_row, allow_zero_rows=not self.normalise)
            if not np.isfinite(sq).all():  # finite entries whose squares overflow (e.g. rows scaled by 1e200)
                row = start_row + int(np.flatnonzero(~np.isfinite(sq))[0])
                raise InvalidEmbeddingsError(
                    f"{self.name}: squared row norm overflows float64 at row {row}; rescale the embeddings"
                )

    def _update_mean(self, chunk: np.ndarray, start_row: int) -> MomentAccumulator:
        """Mean-only pass: float64 conversion, norms and the weighted column sum (a GEMV) run on
        cache-sized tiles, so the pass stays memory bound instead of writing a float64 copy."""
        n = chunk.shape[0]
        buf = np.empty((min(_TILE_ROWS, n), self.dim))
        total = np.zeros(self.dim)
        for lo in range(0, n, _TILE_ROWS):
            tile = buf[: min(_TILE_ROWS, n - lo)]
            tile[...] = chunk[lo : lo + _TILE_ROWS]
            sq = np.einsum("ij,ij->i", tile, tile)
            self._check_norms(sq, chunk, start_row)
            total += (1.0 / np.sqrt(sq)) @ tile if self.normalise else tile.sum(axis=0)
        if self._shift is None:
            self._shift = total / n
            self._sum = np.zeros(self.dim)
        self._sum += total - n * self._shift
        self.n += n
        return self

    def update_from(
        self, source: str | os.PathLike[str] | np.ndarray, chunk_rows: int = DEFAULT_CHUNK_ROWS
    ) -> MomentAccumulator:
        for start, chunk in iter_chunks(source, chunk_rows):
            self.update(chunk, start_row=start)
        return self

    def merge(self, other: MomentAccumulator) -> MomentAccumulator:
        """Combine two accumulators of the same stream (e.g. from parallel workers)."""
        if other.n == 0:
            return self
        if self.n == 0:
            self.n, self._shift = other.n, other._shift.copy()
            self._sum = other._sum.copy()
            self._scatter = None if other._scatter is None else other._scatter.copy()
            return self
        # Re-express the other's sums around our shift: x - a = (x - b) + (b - a).
        delta = other._shift - self._shift
        other_sum = other._sum + other.n * delta
        if self.with_cov:
            self._scatter += (
                other._scatter
                + np.outer(other._sum, delta)
                + np.outer(delta, other._sum)
                + other.n * np.outer(delta, delta)
            )
        self._sum += other_sum
        self.n += other.n
        return self

    def _require(self, min_n: int) -> None:
        if self.n < min_n:
            from modgap.errors import InvalidEmbeddingsError

            raise InvalidEmbeddingsError(f"{self.name}: needs at least {min_n} rows, got {self.n}")

    @property
    def mean(self) -> np.ndarray:
        self._require(1)
        return self._shift + self._sum / self.n

    @property
    def cov(self) -> np.ndarray:
        """Population covariance (1/n), symmetrised."""
        if not self.with_cov:
            raise ValueError(f"{self.name}: accumulator was created with with_cov=False")
        self._require(2)
        centred_mean = self._sum / self.n
        cov = self._scatter / self.n - np.outer(centred_mean, centred_mean)
        return (cov + cov.T) / 2


def moments_of(
    source: str | os.PathLike[str] | np.ndarray | Iterable[np.ndarray],
    *,
    name: str = "embeddings",
    normalise: bool = True,
    with_cov: bool = True,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    gemm_dtype: type = np.float64,
) -> MomentAccumulator:
    """One streaming pass over ``source`` (an array, a ``.npy`` path or an iterable of blocks)."""
    if isinstance(source, (str, os.PathLike, np.ndarray)):
        array = open_embeddings(source)
        if array.ndim != 2:
            check_embeddings(np.asarray(array), name)
        acc = MomentAccumulator(
            array.shape[1], name=name, normalise=normalise, with_cov=with_cov, gemm_dtype=gemm_dtype
        )
        return acc.update_from(array, chunk_rows)
    acc = None
    start = 0
    for block in source:
        if acc is None:
            acc = MomentAccumulator(
                block.shape[1], name=name, normalise=normalise, with_cov=with_cov, gemm_dtype=gemm_dtype
            )
        acc.update(block, start_row=start)
        start += block.shape[0]
    if acc is None:
        from modgap.errors import InvalidEmbeddingsError

        raise InvalidEmbeddingsError(f"{name}: no rows")
    return acc
