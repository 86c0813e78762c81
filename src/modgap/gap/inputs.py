"""Opening and cross-checking the two embedding sources of a statistic before any heavy pass."""

from __future__ import annotations

import os

import numpy as np

from modgap.errors import InvalidEmbeddingsError
from modgap.stats.moments import open_embeddings

Source = str | os.PathLike[str] | np.ndarray


def open_two(
    image: Source, text: Source, image_name: str, text_name: str, *, paired: bool, min_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Memory-map/return both arrays, checking shapes (and equal row counts when ``paired``)."""
    arrays = []
    for src, name in ((image, image_name), (text, text_name)):
        arr = open_embeddings(src)
        if arr.ndim != 2:
            raise InvalidEmbeddingsError(f"{name}: expected a 2-D (n, d) array, got shape {arr.shape}")
        if arr.shape[0] < min_rows:
            raise InvalidEmbeddingsError(f"{name}: this statistic needs at least {min_rows} rows, got {arr.shape[0]}")
        arrays.append(arr)
    x, y = arrays
    if x.shape[1] != y.shape[1]:
        raise InvalidEmbeddingsError(
            f"dimension mismatch: {image_name} has d={x.shape[1]} but {text_name} has d={y.shape[1]}"
        )
    if paired and x.shape[0] != y.shape[0]:
        raise InvalidEmbeddingsError(
            f"paired sets differ in length: {image_name} has {x.shape[0]} rows, {text_name} {y.shape[0]}"
        )
    return x, y
