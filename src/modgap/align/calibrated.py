"""Shared pieces of the closed-form methods: streamed statistics and the final centroid calibration.

Centroid calibration (ReAlign step 3, BC step 3, AnisoAlign's final step, optional for std/CORAL):
e = n(e' - mu_hat + mu_x) where mu_hat is the mean of the pre-calibration output e' over the fit
text set (inductive default) or over the set being transformed (transductive; spec 0).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from modgap.align.base import AlignMethod
from modgap.align.source import EmbeddingSource, unit_rows_unchecked
from modgap.stats.moments import MomentAccumulator


def stream_moments(
    src: EmbeddingSource,
    chunk_rows: int,
    *,
    with_cov: bool,
    fn: Callable[[np.ndarray], np.ndarray] | None = None,
    name: str | None = None,
) -> MomentAccumulator:
    """Mean (and covariance) of the unit rows of ``src``, optionally after a row map ``fn``."""
    dim = src.dim
    acc: MomentAccumulator | None = None
    for start, y in src.chunks(chunk_rows):
        block = y if fn is None else fn(y)
        if acc is None:
            dim = block.shape[1]
            acc = MomentAccumulator(dim, name=name or src.name, normalise=False, with_cov=with_cov)
        acc.update(block, start_row=start)
    assert acc is not None  # EmbeddingSource guarantees at least one row
    return acc


class CentroidCalibrated(AlignMethod):
    """A method whose output is ``n(pre - mu_hat + mu_x)``; ``pre`` comes from ``_pre``."""

    set_mean_key = "mu_hat"

    def _calibrate(self) -> bool:
        return bool(self.params.get("recalibrate", True))

    def _pre(self, y: np.ndarray, state: Mapping[str, np.ndarray], start: int, stream: str) -> np.ndarray:
        raise NotImplementedError

    def _pre_calibration(self, y, start, state, stream):  # type: ignore[override]
        return self._pre(y, state, start, stream)

    def _fit_calibration(self, texts: EmbeddingSource, state: dict[str, np.ndarray]) -> None:
        """Add ``mu_hat`` (mean of the pre-calibration output over the fit text set) to ``state``."""
        total = np.zeros(texts.dim)
        for start, y in texts.chunks(self.chunk_rows):
            total += self._pre(y, state, start, "").sum(axis=0)
        state["mu_hat"] = total / texts.n

    def _transform_block(self, y, start, state, stream):  # type: ignore[override]
        pre = self._pre(y, state, start, stream)
        if not self._calibrate():
            return pre
        return unit_rows_unchecked(pre - state["mu_hat"] + state["mu_x"])
