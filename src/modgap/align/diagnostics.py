"""Alignment diagnostics on the held-out paired split (spec alignment-methods §4; z_i = T(y_i)).

Every function takes float arrays of unit rows (x = images, y = texts, z = substitutes, row i paired).
k-NN is exact brute-force cosine, self excluded, ties broken by row order (spec §5.4).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modgap.stats.mixing import knn_graph
from modgap.stats.mixing import modality_mixing as shared_mixing
from modgap.stats.spectral import anisotropy_ratio
from modgap.stats.symmat import eigh_desc


def _f64(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def knn(a: np.ndarray, k: int) -> np.ndarray:
    """(n, k) cosine k-NN, self excluded: the shared ``modgap.stats.mixing.knn_graph``."""
    return knn_graph(a, min(k, a.shape[0] - 1))


def instance_consistency(y: np.ndarray, z: np.ndarray) -> float:
    """Phi = mean_i y_i . z_i ([AA] §5)."""
    return float(np.mean(np.sum(_f64(y) * _f64(z), axis=1)))


def _pairs(n: int, n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, n_pairs)
    j = (i + rng.integers(1, n, n_pairs)) % n  # j != i
    return i, j


def relative_geometry(y: np.ndarray, z: np.ndarray, n_pairs: int = 200_000, seed: int = 0) -> float:
    """Psi = Pearson corr of {y_i.y_j} and {z_i.z_j} over random pairs i != j."""
    y, z = _f64(y), _f64(z)
    i, j = _pairs(y.shape[0], n_pairs, seed)
    return float(np.corrcoef(np.sum(y[i] * y[j], 1), np.sum(z[i] * z[j], 1))[0, 1])


def neighbourhood_consistency(y: np.ndarray, z: np.ndarray, k: int = 20) -> float:
    """Omega_k = mean_i |N_k^Y(y_i) & N_k^Z(z_i)| / k."""
    ny, nz = knn(y, k), knn(z, k)
    return float(np.mean([len(set(a) & set(b)) / ny.shape[1] for a, b in zip(ny, nz, strict=True)]))


def centroid_gap(x: np.ndarray, z: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Delta_mu = ||mean z - mean x|| with the sampling floor sqrt(tr Cov(x - z)/n) and a bootstrap CI."""
    x, z = np.asarray(x, np.float64), np.asarray(z, np.float64)
    n = x.shape[0]
    diff = z - x
    gap = float(np.linalg.norm(diff.mean(0)))
    floor = float(np.sqrt(np.sum(diff.var(0)) / n))
    # E||mean(z - x)||^2 = ||mu_z - mu_x||^2 + floor^2, so the plain estimate (and its percentile
    # bootstrap) is biased upward by the floor; the debiased value removes it.
    out = {"delta_mu": gap, "sampling_floor": floor, "delta_mu_debiased": float(np.sqrt(max(0.0, gap**2 - floor**2)))}
    if n_boot:
        rng = np.random.default_rng(seed)
        boots = [np.linalg.norm(diff[rng.integers(0, n, n)].mean(0)) for _ in range(n_boot)]
        lo, hi = np.quantile(boots, [0.025, 0.975])
        out.update(ci95_low=float(lo), ci95_high=float(hi))
    return out


def modality_mixing(x: np.ndarray, z: np.ndarray, k: int = 20, n_perm: int = 20, seed: int = 0) -> dict[str, Any]:
    """M_k^Z, M_k^X, M_k^Q (shared ``modgap.stats.mixing.modality_mixing``: entropy of the image fraction
    among k-NN in X u Z over its label-permutation null) plus the [RA] k-NN mixing rate (fraction of
    other-modality neighbours), pooled and per modality."""
    out: dict[str, Any] = dict(shared_mixing(x, z, k=k, shuffles=n_perm, seed=seed))
    pool = np.concatenate([x, z])
    is_x = np.zeros(pool.shape[0], bool)
    is_x[: x.shape[0]] = True
    other = (is_x[knn(pool, k)] != is_x[:, None]).mean(1)
    out.update(
        mixing_rate=float(other.mean()),
        mixing_rate_text=float(other[~is_x].mean()),
        mixing_rate_image=float(other[is_x].mean()),
    )
    return out


def residual_spectrum(x: np.ndarray, z: np.ndarray) -> dict[str, Any]:
    """Spectrum of Sigma_r = (1/n) sum r r^T, r = x - z (uncentred, as written) and of the centred one."""
    r = np.asarray(x, np.float64) - np.asarray(z, np.float64)
    d = r.shape[1]
    out: dict[str, Any] = {}
    for name, mat in (("uncentred", r.T @ r / r.shape[0]), ("centred", np.cov(r.T, bias=True))):
        eig, _ = eigh_desc(mat)
        tr = float(eig.sum())
        out[name] = {"A_r": anisotropy_ratio(eig, d), "trace": tr, "normalised": (eig / tr).tolist()}
    return out


def spectrum_exponent(emb: np.ndarray, ref_eig: np.ndarray, k_max: int | None = None) -> dict[str, float]:
    """Power-law alpha of the covariance spectrum rescaled to the image trace (spec 4.4).

    Fit range k = 1..k99 of the image spectrum ``ref_eig`` (99% of its trace) unless ``k_max``.
    """
    eig, _ = eigh_desc(np.cov(_f64(emb).T, bias=True))
    eig = eig * ref_eig.sum() / eig.sum()
    k99 = int(np.searchsorted(np.cumsum(ref_eig) / ref_eig.sum(), 0.99) + 1)
    top = min(k_max or k99, int(np.sum(eig > 0)))
    k = np.arange(1, top + 1)
    slope = np.polyfit(np.log(k), np.log(eig[:top]), 1)[0]
    return {"alpha": float(-slope), "k_max": top}


def cosine_js(z: np.ndarray, x: np.ndarray, n_pairs: int = 200_000, grid: int = 2001, seed: int = 0) -> dict[str, Any]:
    """JS divergence between KDEs of within-set pairwise cosines of ``z`` and of ``x`` (spec 4.5).

    Gaussian KDE with Scott's bandwidth, evaluated on ``grid`` points of [-1, 1] by binning the samples
    on the grid and convolving (exact up to the grid spacing 1e-3, far below the bandwidth).
    """
    edges = np.linspace(-1, 1, grid)
    dens = []
    for s, arr in enumerate((z, x)):
        a = _f64(arr)
        i, j = _pairs(a.shape[0], n_pairs, seed + s)
        c = np.sum(a[i] * a[j], 1)
        bw = c.std() * len(c) ** (-1 / 5)  # Scott, 1-D
        hist = np.histogram(c, bins=grid, range=(-1 - 1e-3 / 2, 1 + 1e-3 / 2))[0].astype(float)
        step = edges[1] - edges[0]
        half = int(np.ceil(5 * bw / step))
        kern = np.exp(-0.5 * (np.arange(-half, half + 1) * step / max(bw, 1e-12)) ** 2)
        p = np.convolve(hist, kern, mode="same")[:grid]
        dens.append(p / p.sum())
    p, q = dens
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log(a[mask] / b[mask])))

    js = 0.5 * kl(p, m) + 0.5 * kl(q, m)
    keep = slice(None, None, 10)
    return {
        "js_nats": js,
        "js_bits": js / np.log(2),
        "grid": edges[keep].tolist(),
        "p": p[keep].tolist(),
        "q": q[keep].tolist(),
    }


def all_metrics(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, *, k: int = 20, seed: int = 0, n_pairs: int = 200_000, n_perm: int = 20
) -> dict[str, Any]:
    """The §5.6 metric set for one method on one paired split (z re-normalised first, gap-theory §3)."""
    x64, y64, z64 = _f64(x), _f64(y), _f64(z)
    img_eig, _ = eigh_desc(np.cov(x64.T, bias=True))
    pca = np.linalg.svd(
        np.concatenate([x64, _f64(z64)]) - np.concatenate([x64, _f64(z64)]).mean(0), full_matrices=False
    )[2][:2]
    show = np.random.default_rng(seed).choice(x64.shape[0], min(500, x64.shape[0]), replace=False)
    return {
        "n_pairs": int(x64.shape[0]),
        "centroid": centroid_gap(x64, z64, seed=seed),
        "Phi": instance_consistency(y64, z64),
        "Psi": relative_geometry(y64, z64, n_pairs, seed),
        f"Omega_{k}": neighbourhood_consistency(y64, z64, k),
        "Omega_10": neighbourhood_consistency(y64, z64, 10),
        "mixing": modality_mixing(x64, _f64(z64), k, n_perm, seed),
        "residual": residual_spectrum(x64, z64),
        "spectrum": {
            "alpha": spectrum_exponent(z64, img_eig),
            "alpha_k100": spectrum_exponent(z64, img_eig, 100),
            "alpha_k500": spectrum_exponent(z64, img_eig, 500),
            "alpha_image": spectrum_exponent(x64, img_eig),
            "eig": (np.clip(eigh_desc(np.cov(_f64(z64).T, bias=True))[0], 0, None)).tolist(),
            "eig_image": img_eig.tolist(),
        },
        "cosine_js": cosine_js(z64, x64, n_pairs, seed=seed),
        "pca2d": {"image": (x64[show] @ pca.T).tolist(), "substitute": (_f64(z64)[show] @ pca.T).tolist()},
    }
