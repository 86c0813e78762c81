"""Shared streaming statistics (one implementation for gap theory and alignment)."""

from modgap.stats.moments import MomentAccumulator, iter_chunks, moments_of, open_embeddings

__all__ = ["MomentAccumulator", "iter_chunks", "moments_of", "open_embeddings"]
