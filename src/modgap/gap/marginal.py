"""Marginal (unpaired) gap statistics: [AA] §3.1–3.2 (C_lambda, O_q, G_mu, G_Sigma), [RA] App. G/F.4.

Everything here needs only the two marginal distributions, so it runs on the unpaired statistics set
in one streaming float64 pass per modality (memory O(d^2), independent of N).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from modgap.errors import InvalidEmbeddingsError
from modgap.gap.inputs import Source, open_two
from modgap.stats.moments import DEFAULT_CHUNK_ROWS, MomentAccumulator, moments_of
from modgap.stats.spectral import (
    eigh_desc,
    entropy_effective_rank,
    kappa_full,
    log_spectral_correlation,
    overlap_curve,
    participation_ratio,
)

#: q values at which O_q is reported as a scalar (the paper quotes O_128).
REPORT_Q = (1, 8, 32, 128, 512)
G_SIGMA_EPS = 1e-12  # spec 2.3: epsilon of G_Sigma (unspecified in the paper)


@dataclass
class Marginal:
    """Mean, covariance and sorted spectrum of one modality's (re-normalised) embeddings."""

    name: str
    n: int
    mean: np.ndarray
    cov: np.ndarray
    eigs: np.ndarray
    vecs: np.ndarray

    @classmethod
    def from_accumulator(cls, acc: MomentAccumulator) -> Marginal:
        eigs, vecs = eigh_desc(acc.cov)
        return cls(acc.name, acc.n, acc.mean, acc.cov, eigs, vecs)

    @property
    def dim(self) -> int:
        return self.mean.size

    @property
    def rank_limit(self) -> int:
        """Ranks that carry information: a covariance of n points has rank at most n - 1."""
        return min(self.n - 1, self.dim)

    def summary(self) -> dict[str, float]:
        eigs = self.eigs[: self.rank_limit]
        return {
            "n": self.n,
            "mean_norm": float(np.linalg.norm(self.mean)),
            "trace": float(np.sum(self.eigs)),
            "lambda_max": float(self.eigs[0]),
            "erank_entropy": entropy_effective_rank(eigs),
            "d_eff_pr": participation_ratio(eigs),
            "kappa_full": kappa_full(self.eigs),
            "kappa_kept": kappa_full(eigs),
        }


@dataclass
class MarginalStats:
    """The image (target, x) and text (source, y) marginals and the statistics comparing them."""

    image: Marginal
    text: Marginal

    def __post_init__(self) -> None:
        if self.image.dim != self.text.dim:
            raise InvalidEmbeddingsError(
                f"{self.image.name} has dimension {self.image.dim} but {self.text.name} has {self.text.dim}"
            )

    @property
    def dim(self) -> int:
        return self.image.dim

    @property
    def max_rank(self) -> int:
        """Ranks usable by C_lambda and O_q: j <= min(n_x, n_y, d) - 1 (spec 2.1 note)."""
        return min(self.image.n, self.text.n, self.dim + 1) - 1

    def g_mu(self) -> float:
        return float(np.linalg.norm(self.image.mean - self.text.mean))

    def g_sigma(self) -> float:
        diff = np.linalg.norm(self.image.cov - self.text.cov)
        return float(diff / (np.linalg.norm(self.image.cov) + G_SIGMA_EPS))

    def c_lambda(self) -> tuple[float, int]:
        return log_spectral_correlation(self.image.eigs, self.text.eigs, max_rank=self.max_rank)

    def overlap(self, q_max: int = 512) -> np.ndarray:
        """O_q for q = 1..min(q_max, max_rank); the random baseline is q/d."""
        return overlap_curve(self.image.vecs, self.text.vecs, min(q_max, self.max_rank))

    def summary(self) -> dict[str, Any]:
        c_lam, c_range = self.c_lambda()
        curve = self.overlap()
        out: dict[str, Any] = {
            "dim": self.dim,
            "G_mu": self.g_mu(),
            "G_Sigma": self.g_sigma(),
            "C_lambda": c_lam,
            "C_lambda_ranks": c_range,
            "O_q": {str(q): float(curve[q - 1]) for q in REPORT_Q if q <= curve.size},
            "O_q_random": {str(q): q / self.dim for q in REPORT_Q if q <= curve.size},
            "image": self.image.summary(),
            "text": self.text.summary(),
        }
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """Spectra and curves for the ``.npz`` output and the figures."""
        return {
            "mu_image": self.image.mean,
            "mu_text": self.text.mean,
            "eig_image": self.image.eigs,
            "eig_text": self.text.eigs,
            "overlap_q": self.overlap(),
        }


def marginal_from_source(
    source: Source, name: str, *, chunk_rows: int = DEFAULT_CHUNK_ROWS, gemm_dtype: type = np.float64
) -> Marginal:
    acc = moments_of(source, name=name, chunk_rows=chunk_rows, gemm_dtype=gemm_dtype)
    if acc.n < 3:
        raise InvalidEmbeddingsError(f"{name}: marginal statistics need at least 3 rows, got {acc.n}")
    return Marginal.from_accumulator(acc)


def marginal_stats(
    image: Source,
    text: Source,
    *,
    image_name: str = "image statistics set",
    text_name: str = "text statistics set",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    gemm_dtype: type = np.float64,
) -> MarginalStats:
    """One streaming pass per modality; ``image``/``text`` are arrays or ``.npy`` paths."""
    image, text = open_two(image, text, image_name, text_name, paired=False, min_rows=3)
    img = marginal_from_source(image, image_name, chunk_rows=chunk_rows, gemm_dtype=gemm_dtype)
    txt = marginal_from_source(text, text_name, chunk_rows=chunk_rows, gemm_dtype=gemm_dtype)
    return MarginalStats(img, txt)
