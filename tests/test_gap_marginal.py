"""Marginal statistics on planted data: C_lambda, O_q, G_mu, G_Sigma, random baseline, chunking."""

from __future__ import annotations

import numpy as np
import pytest

from modgap.errors import InvalidEmbeddingsError
from modgap.gap.marginal import marginal_stats
from modgap.gap.synthetic import planted_pairs
from modgap.stats.moments import moments_of
from modgap.stats.spectral import (
    entropy_effective_rank,
    haar_subspace,
    overlap_curve,
    participation_ratio,
    subspace_overlap,
)


@pytest.fixture(scope="module")
def planted():
    return planted_pairs(20000, 48, seed=1)


@pytest.fixture(scope="module")
def stats(planted):
    # Marginal statistics are unpaired: use disjoint halves for images and texts.
    return marginal_stats(planted.x[:10000], planted.y[10000:])


def test_centroid_shift_recovered(planted, stats):
    # Sampling s.e. of each mean is h / sqrt(n) = 0.8 / 100 along the planted axes: allow 4 s.e.
    planted_g_mu = np.linalg.norm(planted.mu_x - planted.mu_y)  # = 0.6 * sqrt(2)
    assert stats.g_mu() == pytest.approx(planted_g_mu, abs=0.032)
    assert np.linalg.norm(stats.image.mean - planted.mu_x) < 0.032


def test_covariance_shape_recovered(planted, stats):
    truth = np.linalg.norm(planted.cov_x - planted.cov_y) / np.linalg.norm(planted.cov_x)
    assert stats.g_sigma() == pytest.approx(truth, rel=0.03)
    assert np.abs(stats.image.cov - planted.cov_x).max() < 0.01


def test_shared_subspace_overlap(planted, stats):
    # The 4 shared axes carry the 4 largest variances of both modalities -> O_q = 1 for q <= 4,
    # and with 8 non-zero directions per modality, O_8 = 4/8 (the residual axes differ).
    curve = stats.overlap()
    assert curve[:4] == pytest.approx(np.ones(4), abs=1e-3)
    assert curve[7] == pytest.approx(0.5, abs=1e-3)
    assert np.all((curve >= -1e-12) & (curve <= 1 + 1e-12))


def test_log_spectral_correlation_identical_spectra(stats):
    # Both modalities have the same planted non-zero spectrum (8 ranks).
    _, used = stats.c_lambda()
    assert used == 48
    from modgap.stats.spectral import log_spectral_correlation

    c8, k = log_spectral_correlation(stats.image.eigs, stats.text.eigs, max_rank=8)
    assert k == 8 and c8 > 0.999


def test_random_subspace_baseline_q_over_d():
    rng = np.random.default_rng(0)
    d, q, draws = 64, 8, 400
    fixed = haar_subspace(d, q, rng)
    values = np.array([subspace_overlap(fixed, haar_subspace(d, q, rng)) for _ in range(draws)])
    se = values.std(ddof=1) / np.sqrt(draws)
    assert abs(values.mean() - q / d) < 3 * se


def test_overlap_curve_matches_direct():
    rng = np.random.default_rng(3)
    a = np.linalg.qr(rng.standard_normal((20, 20)))[0]
    b = np.linalg.qr(rng.standard_normal((20, 20)))[0]
    curve = overlap_curve(a, b, 12)
    direct = [subspace_overlap(a[:, :q], b[:, :q]) for q in range(1, 13)]
    assert curve == pytest.approx(direct, abs=1e-12)


def test_effective_ranks_bounds():
    flat = np.ones(10)
    assert participation_ratio(flat) == pytest.approx(10)
    assert entropy_effective_rank(flat) == pytest.approx(10)
    spiky = np.array([1.0] + [0.0] * 9)
    assert participation_ratio(spiky) == pytest.approx(1)
    assert entropy_effective_rank(spiky) == pytest.approx(1)


def test_chunked_equals_one_shot(planted, tmp_path):
    path = tmp_path / "image.npy"
    np.save(path, planted.x[:3000])
    one = marginal_stats(planted.x[:3000], planted.y[:3000], chunk_rows=10**6)
    chunked = marginal_stats(path, planted.y[:3000], chunk_rows=7)
    assert np.abs(one.image.cov - chunked.image.cov).max() < 1e-15
    assert np.abs(one.image.mean - chunked.image.mean).max() < 1e-15
    assert one.summary()["G_Sigma"] == pytest.approx(chunked.summary()["G_Sigma"], rel=1e-12)


def test_float32_gemm_precision(planted):
    # Each chunk's scatter B^T B of the centred rows goes through a float32 GEMM: every entry is a k-term dot
    # product of inputs rounded once to float32 (k = chunk rows), so its error is bounded by float32
    # arithmetic, not by one BLAS: |err_ij| <= lambda * sqrt(k + 2) * u * (|B|^T |B|)_ij, Higham & Mary's
    # probabilistic bound (SIAM J. Sci. Comput. 41(5), 2019), which fails with probability at most
    # 2 (k + 2) exp(-lambda^2 / 2) per entry: about 1e-10 for lambda = 8. The deterministic bound
    # (k + 2) u / (1 - (k + 2) u) is 64x looser here; a float16 GEMM or an unshifted accumulation breaks both.
    chunk_rows = 4096
    exact = moments_of(planted.x, chunk_rows=chunk_rows)
    fast = moments_of(planted.x, chunk_rows=chunk_rows, gemm_dtype=np.float32)
    rows = planted.x / np.linalg.norm(planted.x, axis=1, keepdims=True)
    centred = np.abs(rows - rows[:chunk_rows].mean(axis=0))  # the accumulator shifts by its first chunk's mean
    abs_gram = centred.T @ centred / rows.shape[0]
    unit_roundoff = np.finfo(np.float32).eps / 2
    bound = 8.0 * np.sqrt(chunk_rows + 2) * unit_roundoff * abs_gram
    err = np.abs(fast.cov - exact.cov)
    assert (err <= bound).all(), f"worst entry: {(err / bound).max():.2f} x the float32 bound"
    assert err.max() > 0  # the float32 path really ran in float32
    assert np.abs(fast.mean - exact.mean).max() < 1e-15  # means never go through float32


def test_float64_mean_precision_vs_float32():
    # [RA] App. E: float32 accumulation of a mean over 5e5 rows errs ~1e-7; float64 ~1e-15.
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((500_000, 4)).astype(np.float32) + 3.0
    reference = np.array([np.longdouble(0)] * 4)
    for col in range(4):
        reference[col] = np.sum(rows[:, col].astype(np.longdouble)) / rows.shape[0]
    acc = moments_of(rows, normalise=False, with_cov=False)
    f32 = np.zeros(4, dtype=np.float32)
    for start in range(0, rows.shape[0], 1000):  # a naive running float32 sum
        f32 += rows[start : start + 1000].sum(axis=0, dtype=np.float32)
    err64 = np.abs(acc.mean - reference.astype(np.float64)).max()
    err32 = np.abs(f32 / rows.shape[0] - reference.astype(np.float64)).max()
    assert err64 < 1e-14
    assert err32 > 1e-9


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda a: a.__setitem__((17, 2), np.nan),
            "image statistics set: 1 row(s) contain NaN or Inf, first at row 17",
        ),
        (lambda a: a.__setitem__((5, 0), np.inf), "first at row 5"),
        (lambda a: a.__setitem__(9, 0.0), "zero vector(s) cannot be normalised, first at row 9"),
    ],
)
def test_bad_values_are_named(planted, mutate, message):
    bad = planted.x[:100].copy()
    mutate(bad)
    with pytest.raises(InvalidEmbeddingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        marginal_stats(bad, planted.y[:100], chunk_rows=8)


def test_dimension_mismatch_and_too_few_rows(planted):
    with pytest.raises(InvalidEmbeddingsError, match=r"dimension mismatch.*d=48.*d=40"):
        marginal_stats(planted.x[:50], planted.y[:50, :40])
    with pytest.raises(InvalidEmbeddingsError, match=r"text statistics set: .*at least 3 rows, got 2"):
        marginal_stats(planted.x[:50], planted.y[:2])
    with pytest.raises(InvalidEmbeddingsError, match="2-D"):
        marginal_stats(planted.x[0], planted.y[:50])
