"""Null models and bootstrap intervals for the claims report, computed from the embeddings.

Every statistic here is recomputed from the same arrays the gap and alignment stages used (the
held-out paired ``diag`` split, the statistics-split moments in ``spectra.npz`` and each method's
``substitutes/diag.npy``), under a null that would make its claim false:

* ``shuffled_pairs``: the image–text pairing permuted (marginals kept): a paired-residual claim that
  still passes tests marginal anisotropy, not the pairing;
* ``isotropic_residual``: a Gaussian residual N(0, tr(Sigma_r)/d I) with the same n and d;
* ``isotropic_marginals``: two isotropic Gaussian sets with the stats split's n and d;
* ``random_direction`` / ``random_subspace``: Haar directions or subspaces of the same dimension;
* ``sign_flip``: x_i and z_i swapped at random within each pair (no modality gap);
* ``isotropic_sigma``: the phantom-drift predictor with Sigma replaced by tr(Sigma)/d I.

Orderings between alignment methods get a paired percentile bootstrap of the difference over the
diagnostic pairs (the same resampled pairs for both methods). Output: a flat ``{key: float}`` dict
merged into the claims namespace (keys ``null.*``, ``boot.*``, ``sweep.*``, ``phantom.*``).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modgap.align.diagnostics import cosine_js, knn, spectrum_exponent
from modgap.gap.paired import aniso_summary, frame_summary, paired_moments
from modgap.gap.phantom import phantom_drift_2nd, phantom_drift_empirical, phantom_drift_mc
from modgap.stats.mixing import binary_entropy
from modgap.stats.spectral import (
    anisotropy_ratio,
    eigh_desc,
    log_spectral_correlation,
    overlap_curve,
    participation_ratio,
)

log = logging.getLogger(__name__)

QUANTILES = {"q01": 0.01, "q50": 0.5, "q99": 0.99}
CI_LEVEL = 0.95
#: C3's noise norm sigma*sqrt(d) swept for the sensitivity table (2.02 = sqrt(0.016)*sqrt(256)).
C3_NOISE_NORMS = (0.1, 0.2, 0.3, 0.5, 1.0, 2.0)
C3_PAPER_PHI = 0.899  # [AA] Fig 7: C3's instance consistency on LLM2CLIP / Bunny
ORDER_METRICS = ("delta_mu", "Phi", "Psi", "Omega_20", "Omega_10", "M_X", "M_Z", "js", "mixing_rate", "alpha")
PHANTOM_SMALL_NOISE = 0.1  # eps^2 = tr(Sigma)/||mu||^2 below which the second-order formula applies


@dataclass(frozen=True)
class NullConfig:
    draws: int = 200  # cheap draws (isotropic residuals, random directions/subspaces)
    shuffles: int = 20  # draws that rerun the full paired pipeline
    boot: int = 200  # bootstrap resamples of the diagnostic pairs
    set_boot: int = 100  # resamples for set-level metrics (Psi, JS, alpha), each a full recomputation
    pairs: int = 10_000  # random (i, j) pairs for Psi and JS inside each resample
    knn_k: int = 20
    seed: int = 0


def summarise(draws: Iterable[float], prefix: str) -> dict[str, float]:
    """q01/q50/q99, mean and count of seeded null draws under ``prefix``."""
    arr = np.asarray([v for v in draws if np.isfinite(v)], dtype=float)
    if arr.size == 0:
        return {}
    out = {f"{prefix}.{name}": float(np.quantile(arr, q)) for name, q in QUANTILES.items()}
    out.update({f"{prefix}.mean": float(arr.mean()), f"{prefix}.sd": float(arr.std()), f"{prefix}.n": float(arr.size)})
    return out


def unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# gap-geometry nulls


def residual_spectrum_stats(eigs: np.ndarray, d: int) -> dict[str, float]:
    return {"A_r": anisotropy_ratio(eigs, d), "d_eff_over_d": participation_ratio(eigs) / d}


def isotropic_residual_null(n: int, d: int, rank_u: int, draws: int, seed: int) -> dict[str, float]:
    """A_r, d_eff/d and tr_V/tr_U of N(0, I_d) residuals with n rows (all scale-free, so the trace
    does not matter; the frame split is any rank_u coordinates by rotation invariance)."""
    rng = np.random.default_rng(seed)
    stats: dict[str, list[float]] = {"A_r": [], "d_eff_over_d": [], "tr_V_over_U": []}
    for _ in range(draws):
        r = rng.standard_normal((n, d))
        r -= r.mean(0)
        cov = r.T @ r / n
        for k, v in residual_spectrum_stats(np.linalg.eigvalsh(cov)[::-1], d).items():
            stats[k].append(v)
        diag = np.diag(cov)
        stats["tr_V_over_U"].append(float(diag[rank_u:].sum() / diag[:rank_u].sum()))
    out: dict[str, float] = {}
    for k, v in stats.items():
        out.update(summarise(v, f"null.isotropic_residual.{k}"))
    return out


def random_direction_angle_null(p: int, draws: int, seed: int) -> dict[str, float]:
    """arccos|<g, v>| in degrees of a fixed g and Haar unit vectors v in R^p (the angle_gamma_v1 law)."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((draws, p))
    cos = np.abs(v[:, 0]) / np.linalg.norm(v, axis=1)  # g = e_1 by rotation invariance
    return summarise(np.degrees(np.arccos(np.minimum(cos, 1.0))), "null.random_direction.angle_gamma_v1")


def random_subspace_coverage_null(sigma_r: np.ndarray, ranks: Sequence[int], draws: int, seed: int) -> dict[str, float]:
    """min over r of (tr(P Sigma_r)/tr Sigma_r - r/d) for Haar rank-r projectors P (the eta_U test)."""
    rng = np.random.default_rng(seed)
    d = sigma_r.shape[0]
    total = float(np.trace(sigma_r))
    mins = []
    for _ in range(draws):
        excess = []
        for r in ranks:
            q = np.linalg.qr(rng.standard_normal((d, r)))[0]  # Haar: Q of a Gaussian matrix
            excess.append(float(np.sum((sigma_r @ q) * q)) / total - r / d)
        mins.append(min(excess))
    return summarise(mins, "null.random_subspace.eta_U_excess")


def isotropic_marginals_null(n_x: int, n_y: int, d: int, qs: Sequence[int], draws: int, seed: int) -> dict[str, float]:
    """C_lambda and min_q (O_q - q/d) of two independent isotropic Gaussian sets of the stats split's size."""
    rng = np.random.default_rng(seed)
    c_lam, excess = [], []
    max_rank = min(n_x, n_y, d + 1) - 1
    qs = [q for q in qs if q <= max_rank]
    for _ in range(draws):
        spectra = []
        for n in (n_x, n_y):
            a = unit(rng.standard_normal((n, d)))
            spectra.append(eigh_desc(np.cov(a.T, bias=True)))
        (ea, va), (eb, vb) = spectra
        c_lam.append(log_spectral_correlation(ea, eb, max_rank=max_rank)[0])
        curve = overlap_curve(va, vb, max(qs))
        excess.append(min(curve[q - 1] - q / d for q in qs))
    return {
        **summarise(c_lam, "null.isotropic_marginals.C_lambda"),
        **summarise(excess, "null.isotropic_marginals.O_q_excess"),
    }


def paired_stats(x: np.ndarray, y: np.ndarray, rank_u: int, eta_bases: Mapping[int, np.ndarray]) -> dict[str, float]:
    """The paired-residual statistics the claims test, through the gap stage's own functions."""
    pm = paired_moments(x, y, frame_rank=rank_u)
    aniso = aniso_summary(pm, dict(eta_bases), random_draws=0)
    frame, _ = frame_summary(pm)
    out = {
        "A_r": aniso["A_r"],
        "d_eff_over_d": aniso["d_eff_over_d"],
        "tr_V_over_U": frame["tr_resid_V"] / frame["tr_resid_U"],
        "angle_gamma_v1": frame["angle_gamma_v1"],
    }
    if eta_bases:
        out["eta_U_excess"] = min(v["eta_U"] - v["random"] for v in aniso["eta_U"].values())
    return out


def shuffled_pairs_null(
    x: np.ndarray, y: np.ndarray, rank_u: int, eta_bases: Mapping[int, np.ndarray], shuffles: int, seed: int
) -> dict[str, float]:
    """Every paired statistic with the pairing permuted (the marginals, hence the frame, unchanged)."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(shuffles):
        for k, v in paired_stats(x, y[rng.permutation(len(y))], rank_u, eta_bases).items():
            draws.setdefault(k, []).append(v)
    out: dict[str, float] = {}
    for k, v in draws.items():
        out.update(summarise(v, f"null.shuffled_pairs.{k}"))
    return out


def sign_flip_gap_null(x: np.ndarray, z: np.ndarray, draws: int, seed: int) -> dict[str, float]:
    """Delta_mu / floor with x_i and z_i swapped at random within pairs (a gap of exactly zero in law)."""
    diff = np.asarray(z, np.float64) - np.asarray(x, np.float64)
    n = diff.shape[0]
    floor = float(np.sqrt(np.sum(diff.var(0)) / n))
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(draws, n))
    ratios = np.linalg.norm(signs @ diff / n, axis=1) / floor
    return summarise(ratios, "null.sign_flip.delta_mu_over_floor")


# ---------------------------------------------------------------------------------------------
# phantom drift: Thm B.14 where it applies


def phantom_regime(mu: np.ndarray, sigma: np.ndarray) -> float:
    """eps^2 = tr(Sigma)/||mu||^2: the second-order expansion needs eps^2 << 1."""
    return float(np.trace(sigma) / float(mu @ mu))


def phantom_checks(mu_x: np.ndarray, cov_y: np.ndarray, texts: np.ndarray, cfg: NullConfig) -> dict[str, float]:
    """Global regime and formula error, the isotropic-Sigma MC control, and Thm B.14 on local clusters.

    Local clusters: each anchor text with its k nearest texts; on a tight cluster eps^2 is small, so
    the formula (with the cluster's own mean and covariance) is tested on the data where it applies.
    Its control is the same formula with Sigma replaced by tr(Sigma)/d I.
    """
    d = mu_x.size
    shifted = texts - texts.mean(0) + mu_x
    emp = np.linalg.norm(phantom_drift_empirical(shifted))
    iso = np.trace(cov_y) / d * np.eye(d)
    mc_iso = np.linalg.norm(phantom_drift_mc(mu_x, iso, 20_000, seed=cfg.seed))
    formula = np.linalg.norm(phantom_drift_2nd(mu_x, cov_y))
    out = {
        "phantom.global.eps2": phantom_regime(mu_x, cov_y),
        "phantom.global.rel_error_formula": float(abs(formula - emp) / emp),
        "null.isotropic_sigma.phantom_rel_diff_mc": float(abs(emp - mc_iso) / mc_iso),
    }
    return {**out, **local_phantom(texts, cfg)}


def local_phantom(texts: np.ndarray, cfg: NullConfig, k: int = 5, anchors: int = 200) -> dict[str, float]:
    """Thm B.14 on local clusters: each anchor text and its k nearest texts, centroid moved onto the
    sphere (Z = y - mu_c + mu_c/||mu_c||, ReAlign's shift at unit target norm), so eps^2 = tr(Sigma_c)."""
    rng = np.random.default_rng(cfg.seed)
    y = unit(texts)
    idx = rng.choice(len(y), min(anchors, len(y)), replace=False)
    nbrs = knn(y, k)
    eps2, err, err_iso = [], [], []
    for i in idx:
        pts = y[np.concatenate([[i], nbrs[i]])]
        centre = pts.mean(0)
        target = centre / np.linalg.norm(centre)
        z = pts - centre + target
        sigma = np.cov(z.T, bias=True)
        emp = phantom_drift_empirical(z)
        if np.linalg.norm(emp) == 0:
            continue
        iso = np.trace(sigma) / sigma.shape[0] * np.eye(sigma.shape[0])
        eps2.append(phantom_regime(target, sigma))
        err.append(np.linalg.norm(phantom_drift_2nd(target, sigma) - emp) / np.linalg.norm(emp))
        err_iso.append(np.linalg.norm(phantom_drift_2nd(target, iso) - emp) / np.linalg.norm(emp))
    return {
        "phantom.local.k": float(k),
        "phantom.local.eps2": float(np.median(eps2)),
        "phantom.local.rel_error_formula": float(np.median(err)),
        "null.isotropic_sigma.phantom_local_rel_error": float(np.median(err_iso)),
    }


# ---------------------------------------------------------------------------------------------
# alignment orderings: per-pair contributions and a paired bootstrap of the difference


@dataclass
class MethodView:
    """One method's substitutes on the diag split with its per-pair diagnostic contributions."""

    z: np.ndarray
    diff: np.ndarray  # z_i - x_i (Delta_mu)
    phi: np.ndarray  # y_i . z_i
    omega: dict[int, np.ndarray]  # |N_k^Y(y_i) & N_k^Z(z_i)| / k
    mix_x: np.ndarray  # H2 of x_i's k-NN in X u Z over the label-permutation null (M^X)
    mix_z: np.ndarray  # same for z_i (M^Z)
    other: np.ndarray  # fraction of other-modality neighbours of x_i plus of z_i (mixing rate, x2)


def method_view(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, ny: Mapping[int, np.ndarray], k: int, perms: int, seed: int
) -> MethodView:
    z = unit(z)
    n = len(x)
    omega = {}
    for kk, nbr_y in ny.items():
        nbr_z = knn(z, kk)
        omega[kk] = np.array([len(set(a) & set(b)) / nbr_y.shape[1] for a, b in zip(nbr_y, nbr_z, strict=True)])
    pool = np.concatenate([x, z])
    is_x = np.zeros(2 * n, bool)
    is_x[:n] = True
    graph = knn(pool, k)
    h = binary_entropy(is_x[graph].mean(1))
    rng = np.random.default_rng(seed)
    null_x, null_z = [], []
    for _ in range(perms):  # the shared modality_mixing normalisation: mean H2 under permuted labels
        lab = rng.permutation(is_x)
        hp = binary_entropy(lab[graph].mean(1))
        null_x.append(hp[lab].mean())
        null_z.append(hp[~lab].mean())
    other = (is_x[graph] != is_x[:, None]).mean(1)
    return MethodView(
        z=z,
        diff=z - x,
        phi=np.sum(unit(y) * z, 1),
        omega=omega,
        mix_x=h[:n] / np.mean(null_x),
        mix_z=h[n:] / np.mean(null_z),
        other=other[:n] + other[n:],
    )


def _psi(y: np.ndarray, z: np.ndarray, i: np.ndarray, j: np.ndarray) -> float:
    return float(np.corrcoef(np.sum(y[i] * y[j], 1), np.sum(z[i] * z[j], 1))[0, 1])


def per_pair(view: MethodView, metric: str) -> np.ndarray | None:
    """The per-pair contributions whose mean is ``metric`` (None for set-level metrics)."""
    if metric == "Phi":
        return view.phi
    if metric.startswith("Omega_"):
        return view.omega[int(metric.split("_")[1])]
    return {"M_X": view.mix_x, "M_Z": view.mix_z, "mixing_rate": view.other / 2}.get(metric)


def boot_values(
    view: MethodView,
    metric: str,
    x: np.ndarray,
    y: np.ndarray,
    idx: np.ndarray,
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    img_eig: np.ndarray,
    seed: int,
) -> np.ndarray:
    """``metric`` of one method on each resample (row of ``idx``). k-NN graphs stay those of the full
    set: resampling them would make duplicated pairs their own neighbours."""
    values = per_pair(view, metric)
    if values is not None:
        return values[idx].mean(axis=1)
    if metric == "delta_mu":
        return np.linalg.norm(view.diff[idx].mean(axis=1), axis=1)
    out = []
    for b, (rows, (i, j)) in enumerate(zip(idx, pairs[: len(idx)], strict=True)):
        if metric == "Psi":
            out.append(_psi(y, view.z, rows[i], rows[j]))
        elif metric == "js":
            out.append(cosine_js(view.z[rows], x[rows], n_pairs=len(i), seed=seed + b)["js_nats"])
        elif metric == "alpha":
            out.append(spectrum_exponent(view.z[rows], img_eig)["alpha"])
        else:
            raise ValueError(f"no bootstrap for metric {metric!r}")
    return np.asarray(out, dtype=float)


def _resample_pairs(n: int, n_pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    i = rng.integers(0, n, n_pairs)
    return i, (i + rng.integers(1, n, n_pairs)) % n


def bootstrap_orderings(
    x: np.ndarray,
    y: np.ndarray,
    substitutes: Mapping[str, np.ndarray],
    orderings: Iterable[tuple[str, str, str]],
    cfg: NullConfig,
    shared: dict[Any, Any] | None = None,
    fresh: Sequence[str] = (),
) -> dict[str, float]:
    """95 % intervals of metric(a) - metric(b) from paired resamples of the diag pairs (the same
    resampled pairs for both methods): the percentile spread, centred at the full-sample difference.
    ``shared``: a cache of method views and resampled values reused across calls with the same cfg
    (the C3 sweep), except for the ``fresh`` methods.

    Keys ``boot.align.<a>.<m>-align.<b>.<m>.{lo,hi,point}``; ``point`` is the full-sample difference
    of this recomputation (a check against the align stage's own number)."""
    orderings = [o for o in orderings if o[0] in substitutes and o[1] in substitutes]
    if not orderings:
        return {}
    x, y = unit(x), unit(y)
    n = len(x)
    shared = {} if shared is None else shared
    for key in [k for k in shared if isinstance(k, tuple) and k[0] in fresh]:
        del shared[key]
    if "ny" not in shared:
        shared["ny"] = {kk: knn(y, kk) for kk in (cfg.knn_k, 10)}
    methods = sorted({m for a, b, _ in orderings for m in (a, b)})
    views: dict[str, MethodView] = {}
    for m in methods:
        if (m, "view") not in shared:
            shared[m, "view"] = method_view(x, y, substitutes[m], shared["ny"], cfg.knn_k, 20, cfg.seed)
        views[m] = shared[m, "view"]
    img_eig = eigh_desc(np.cov(x.T, bias=True))[0]
    rng = np.random.default_rng(cfg.seed)
    full, full_pairs = np.arange(n)[None, :], [_resample_pairs(n, cfg.pairs, rng)]
    idx = rng.integers(0, n, (cfg.boot, n))
    pairs = [_resample_pairs(n, cfg.pairs, rng) for _ in range(cfg.boot)]
    cache = shared

    def values(method: str, metric: str) -> tuple[float, np.ndarray]:
        if (method, metric) not in cache:
            point = boot_values(views[method], metric, x, y, full, full_pairs, img_eig, cfg.seed)[0]
            # set-level metrics (Psi, JS, alpha) recompute per resample: fewer resamples keep the stage fast
            rows = idx if per_pair(views[method], metric) is not None or metric == "delta_mu" else idx[: cfg.set_boot]
            cache[method, metric] = (
                float(point),
                boot_values(views[method], metric, x, y, rows, pairs, img_eig, cfg.seed),
            )
        return cache[method, metric]

    out: dict[str, float] = {}
    tail = (1 - CI_LEVEL) / 2
    for a, b, metric in orderings:
        (pa, va), (pb, vb) = values(a, metric), values(b, metric)
        key = f"boot.align.{a}.{metric}-align.{b}.{metric}"
        # the resampled spread centred at the full-sample difference: resampling biases set-level
        # statistics (||mean|| up by the sampling floor, alpha by duplicated rows), not their spread
        spread = (va - vb) - np.median(va - vb)
        out[f"{key}.lo"], out[f"{key}.hi"] = (pa - pb + float(np.quantile(spread, q)) for q in (tail, 1 - tail))
        out[f"{key}.point"] = pa - pb
    return out


# ---------------------------------------------------------------------------------------------
# C3's noise scale: calibration to the paper's Phi and a sweep


def c3_substitutes(y: np.ndarray, mu_x: np.ndarray, mu_y: np.ndarray, noise_norm: float, seed: int) -> np.ndarray:
    """C3 Align z = n(y - mu_y + mu_x + sigma xi) with sigma = noise_norm / sqrt(d) (E||sigma xi|| ~ noise_norm)."""
    d = y.shape[1]
    xi = np.random.default_rng(seed).standard_normal(y.shape)
    return unit(unit(y) - mu_y + mu_x + noise_norm / np.sqrt(d) * xi)


def calibrate_c3(y: np.ndarray, mu_x: np.ndarray, mu_y: np.ndarray, target_phi: float, seed: int) -> float:
    """The noise norm sigma*sqrt(d) at which C3's Phi equals ``target_phi`` (Phi falls monotonically with it)."""
    grid = np.linspace(0.0, 3.0, 61)
    phi = np.array([np.mean(np.sum(unit(y) * c3_substitutes(y, mu_x, mu_y, s, seed), 1)) for s in grid])
    if not phi.min() <= target_phi <= phi.max():
        return float("nan")
    return float(np.interp(-target_phi, -phi, grid))


def c3_sweep(
    x: np.ndarray,
    y: np.ndarray,
    substitutes: Mapping[str, np.ndarray],
    mu_x: np.ndarray,
    mu_y: np.ndarray,
    orderings: Sequence[tuple[str, str, str]],
    cfg: NullConfig,
    norms: Sequence[float] = C3_NOISE_NORMS,
) -> dict[str, float]:
    """Every C3 ordering re-measured with C3 at each noise norm (and at the paper calibration):
    keys ``sweep.c3.<norm>.boot...`` and ``sweep.c3.<norm>.align.c3.<metric>``."""
    c3_orders = [o for o in orderings if "c3" in o[:2]]
    calibrated = calibrate_c3(y, mu_x, mu_y, C3_PAPER_PHI, cfg.seed)
    out: dict[str, float] = {"sweep.c3.d": float(y.shape[1])}
    # Unattainable (the paper's Phi lies outside what any swept noise norm gives on this data): the key is
    # left out, not written as NaN, and the report says so.
    if np.isfinite(calibrated):
        out["sweep.c3.calibrated_noise_norm"] = calibrated
    quick = NullConfig(
        draws=cfg.draws,
        shuffles=cfg.shuffles,
        boot=cfg.boot,
        set_boot=max(30, cfg.set_boot // 3),
        pairs=cfg.pairs // 2,
        knn_k=cfg.knn_k,
        seed=cfg.seed,
    )
    shared: dict[Any, Any] = {}  # the other methods' views and resampled values, computed once
    for norm in [*norms, *([round(calibrated, 3)] if np.isfinite(calibrated) else [])]:
        subs = {**substitutes, "c3": c3_substitutes(y, mu_x, mu_y, norm, cfg.seed)}
        tag = f"sweep.c3.{norm:g}"
        for key, value in bootstrap_orderings(x, y, subs, c3_orders, quick, shared, fresh=("c3",)).items():
            out[f"{tag}.{key}"] = value
    return out


# ---------------------------------------------------------------------------------------------
# entry point


_DIFF = re.compile(r"^align\.([^.]+)\.([^.]+)$")


def orderings_of(claims: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(method a, method b, metric) of every claim measured as a diff of two align.<method>.<metric>."""
    out = []
    for claim in claims:
        spec = claim.get("measure")
        if isinstance(spec, Mapping) and "diff" in spec:
            ma, mb = (_DIFF.match(str(k)) for k in spec["diff"])
            if ma and mb and ma.group(2) == mb.group(2) and ma.group(2) in ORDER_METRICS:
                out.append((ma.group(1), mb.group(1), ma.group(2)))
    return out


def _load(path: Path) -> np.ndarray | None:
    return np.load(path) if path.is_file() else None


def compute_nulls(
    enc: str,
    ds: str,
    claims: Sequence[Mapping[str, Any]],
    *,
    embeddings_root: Path,
    align_root: Path,
    gap_root: Path,
    cfg: NullConfig | None = None,
) -> dict[str, float]:
    """Every null, interval and sweep the claims of one run need; {} for a part whose inputs are absent."""
    cfg = cfg or NullConfig()
    diag = Path(embeddings_root) / enc / ds / "diag"
    x, y = _load(diag / "image.npy"), _load(diag / "text.npy")
    if x is None or y is None:
        log.warning("%s/%s: no diag embeddings under %s; nulls not computed", enc, ds, diag)
        return {}
    x, y = unit(x), unit(y)
    n, d = x.shape
    out: dict[str, float] = {}
    spectra_path = Path(gap_root) / enc / ds / "spectra.npz"
    stats_path = Path(gap_root) / enc / ds / "stats.json"
    gap_stats = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
    spectra = dict(np.load(spectra_path)) if spectra_path.is_file() else {}
    frame = gap_stats.get("frame", {})
    rank_u = int(frame.get("rank_u", spectra.get("frame_q_u", np.zeros((d, d // 2))).shape[1]))
    eta_bases = {int(k.rsplit("_", 1)[1]): v for k, v in spectra.items() if k.startswith("aa_frame_q_u_")}
    _timed(out, "isotropic residual", lambda: isotropic_residual_null(n, d, rank_u, cfg.draws, cfg.seed))
    _timed(out, "random direction", lambda: random_direction_angle_null(d - rank_u, 100_000, cfg.seed))
    _timed(out, "shuffled pairs", lambda: shuffled_pairs_null(x, y, rank_u, eta_bases, cfg.shuffles, cfg.seed))
    _timed(out, "sign flip", lambda: sign_flip_gap_null(x, y, cfg.draws * 5, cfg.seed))
    pm = paired_moments(x, y, frame_rank=rank_u)
    if eta_bases:
        ranks = sorted(eta_bases)
        _timed(
            out,
            "random subspace",
            lambda: random_subspace_coverage_null(pm.sigma_r, ranks, max(50, cfg.draws // 2), cfg.seed),
        )
    marg = gap_stats.get("marginal", {})
    if marg:
        n_x, n_y = int(marg["image"]["n"]), int(marg["text"]["n"])
        qs = [int(q) for q in marg.get("O_q", {})]
        _timed(
            out,
            "isotropic marginals",
            lambda: isotropic_marginals_null(n_x, n_y, d, qs, max(20, cfg.draws // 10), cfg.seed),
        )
    if "mu_image" in spectra:
        stats_txt = _load(Path(embeddings_root) / enc / ds / "stats" / "text.npy")
        if stats_txt is not None:
            stats_txt = unit(stats_txt)
            cov_y = np.cov(stats_txt.T, bias=True)
            _timed(out, "phantom", lambda: phantom_checks(spectra["mu_image"], cov_y, stats_txt, cfg))
    subs = {}
    for method_dir in sorted(Path(align_root, enc, ds).glob("*/substitutes/diag.npy")):
        subs[method_dir.parent.parent.name] = np.load(method_dir)
    orderings = orderings_of(claims)
    _timed(out, "bootstrap orderings", lambda: bootstrap_orderings(x, y, subs, orderings, cfg))
    if "mu_image" in spectra and "mu_text" in spectra:
        _timed(out, "C3 sweep", lambda: c3_sweep(x, y, subs, spectra["mu_image"], spectra["mu_text"], orderings, cfg))
    return out


def _timed(out: dict[str, float], what: str, fn: Callable[[], dict[str, float]]) -> None:
    start = time.perf_counter()
    out.update(fn())
    log.info("null %s: %.1f s", what, time.perf_counter() - start)
