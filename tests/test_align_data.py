"""Synthetic anisotropic, gapped unit embeddings for the alignment tests (small d, seeded)."""

from __future__ import annotations

import numpy as np


def gapped(n: int, d: int = 16, seed: int = 0, modality: str = "text") -> np.ndarray:
    """Anisotropic Gaussian around a modality-specific offset, projected onto the sphere (float32)."""
    rng = np.random.default_rng(seed)
    scales = np.linspace(1.5, 0.05, d) if modality == "text" else np.linspace(1.0, 0.1, d) ** 1.5
    offset = np.zeros(d)
    offset[0 if modality == "image" else 1] = 2.5
    x = rng.standard_normal((n, d)) * scales + offset
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)
