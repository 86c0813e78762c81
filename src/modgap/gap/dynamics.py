"""Gap dynamics during contrastive training from scratch ([RA] App. H.1, Fig. 1; spec gap-theory §5).

A tiny open_clip dual encoder (a small ViT and a small text Transformer, registered as an open_clip
model config) is trained from scratch with symmetric InfoNCE on the manifest's ``train`` split.
Every ``log_every`` steps the fixed-frame statistics of §5.3 are measured on a held-out probe set
(``stats`` + ``diag`` + ``test`` splits, never trained on) and on the embedding-level gradients of the current
batch. The frame follows the probe set until ``freeze_fraction`` of the steps, then stays fixed.
No target values are assumed (spec 5.4): the output is the measured curves.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from modgap.errors import InvalidEmbeddingsError, ManifestError, MissingInputError
from modgap.gap.frame import (
    Frame,
    ResidualBlocks,
    cosine,
    fit_frame,
    leakage,
    mean_bias,
    pob_drift,
    spectral_locking,
    window_average,
)
from modgap.gap.marginal import Marginal, MarginalStats
from modgap.gap.paired import aniso_summary, coverage, frame_summary, paired_moments
from modgap.gap.phantom import phantom_summary
from modgap.io import atomic_path, staged_dir, write_json_atomic, write_text_atomic
from modgap.paramcheck import (
    COUNT,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    SEED,
    Int,
    Num,
    Rule,
    check_params,
    merge_with_defaults,
)
from modgap.provenance import environment
from modgap.stats.spectral import eigh_desc, kappa_eff, sin_theta, top_eigvecs

log = logging.getLogger(__name__)

MODEL_PREFIX = "modgap-gapdyn-tiny"
IMAGE_SIZE = 32


def model_config(embed_dim: int) -> dict[str, Any]:
    """A from-scratch two-tower open_clip config small enough to train in minutes on 2 CPU cores."""
    return {
        "embed_dim": embed_dim,
        "vision_cfg": {"image_size": IMAGE_SIZE, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    }


DEFAULT_PARAMS: dict[str, Any] = {
    "embed_dim": 64,
    "steps": 1000,
    "batch_size": 128,
    "lr": 1e-3,  # peak of the cosine schedule (paper: 1e-4 at batch 4096 on ViT-B/32)
    "weight_decay": 1e-4,
    "warmup_fraction": 0.1,
    "init_temperature": 0.07,
    "log_every": 5,  # >= 200 logging points at the default step count
    "freeze_fraction": 0.2,  # frame frozen at 20% of steps (paper: step 800 of ~4000)
    "window_fraction": 0.25,  # averaging window = last 25% of logging points (Lemma B.9)
    "frame_energy": 0.90,
    "aa_every": 5,  # the [AA] statistics on every 5th logging point
    "phantom_mc": 2000,
    # Never trained on in this study; the stats split's rows are complete pairs too (its image/text
    # roles matter only to the encoder's statistics set), so it may serve as probe here.
    "probe_splits": ["stats", "diag", "test"],
    "train_splits": ["train"],
    "max_probe": 1000,  # seeded subsample of the probe splits beyond this (encoding cost per log)
    "min_probe_factor": 10,  # probe must hold at least 10 d pairs (spec 5.2); fewer -> error
    "threads": 2,
    "seed": 0,
    "root": None,  # image paths are relative to this (default: the current directory)
}


def register_model(embed_dim: int = 64) -> str:
    """Register :func:`model_config` with open_clip as ``modgap-gapdyn-tiny-d{embed_dim}`` (idempotent)."""
    import open_clip

    name = f"{MODEL_PREFIX}-d{embed_dim}"
    if name not in open_clip.list_models():
        config_dir = Path(tempfile.mkdtemp(prefix="modgap-gapdyn-"))
        (config_dir / f"{name}.json").write_text(json.dumps(model_config(embed_dim)))
        open_clip.add_model_config(config_dir)
    return name


# Types and ranges of DEFAULT_PARAMS (keys not listed take their default's type).
PARAM_RULES: dict[str, Rule] = {
    "embed_dim": Int(2),
    "batch_size": Int(2),  # InfoNCE needs a negative
    "lr": POSITIVE,
    "init_temperature": POSITIVE,
    "weight_decay": NON_NEGATIVE,
    "warmup_fraction": Num(0, 1),
    "freeze_fraction": Num(0, 1),
    "window_fraction": FRACTION,
    "frame_energy": FRACTION,
    "min_probe_factor": Num(1),
    "probe_splits": Rule("str_list"),
    "train_splits": Rule("str_list"),
    "root": Rule("str", nullable=True),
    **dict.fromkeys(("steps", "log_every", "aa_every", "phantom_mc", "max_probe", "threads"), COUNT),
    "seed": SEED,
}


def merge_params(overrides: dict[str, Any] | None) -> dict[str, Any]:
    params = merge_with_defaults(DEFAULT_PARAMS, overrides, "gap dynamics params")
    check_params(params, DEFAULT_PARAMS, PARAM_RULES, "gap dynamics params")
    return params


def load_split(manifest: Path, splits: list[str], root: Path, size: int) -> tuple[np.ndarray, list[str]]:
    """Images of the given splits as a float32 (n, 3, size, size) array in [0, 1], and their captions."""
    import pandas as pd
    from PIL import Image

    if not manifest.exists():
        raise MissingInputError(f"{manifest}: manifest does not exist (written by `modgap data prepare`)")
    table = pd.read_parquet(manifest)
    missing = {"id", "image_path", "caption", "split"} - set(table.columns)
    if missing:
        raise ManifestError(f"{manifest}: manifest lacks column(s) {sorted(missing)}")
    rows = table[table["split"].isin(splits)].sort_values("id")
    images = np.empty((len(rows), 3, size, size), dtype=np.float32)
    for i, (ident, rel) in enumerate(zip(rows["id"], rows["image_path"], strict=True)):
        path = Path(rel) if Path(rel).is_absolute() else root / rel
        try:
            with Image.open(path) as img:
                arr = np.asarray(img.convert("RGB").resize((size, size), Image.BICUBIC), dtype=np.float32)
        except (OSError, ValueError) as exc:
            raise InvalidEmbeddingsError(f"{manifest}: image of id {ident!r} at {path} unreadable: {exc}") from exc
        images[i] = arr.transpose(2, 0, 1) / 255.0
    return images, [str(c) for c in rows["caption"]]


def _lr_at(step: int, params: dict[str, Any]) -> float:
    warm = max(1, int(params["warmup_fraction"] * params["steps"]))
    if step < warm:
        return params["lr"] * (step + 1) / warm
    progress = (step - warm) / max(1, params["steps"] - warm)
    return params["lr"] * 0.5 * (1 + math.cos(math.pi * progress))


class _Probe:
    """Encodes the probe set and holds the per-step statistics that need the previous step."""

    def __init__(self, images: Any, tokens: Any) -> None:
        self.images, self.tokens = images, tokens

    def embed(self, model: Any) -> tuple[np.ndarray, np.ndarray]:
        import torch

        model.eval()
        with torch.no_grad():
            xs, ys = [], []
            for start in range(0, self.images.shape[0], 512):
                xs.append(model.encode_image(self.images[start : start + 512], normalize=True))
                ys.append(model.encode_text(self.tokens[start : start + 512], normalize=True))
        model.train()
        return torch.cat(xs).double().numpy(), torch.cat(ys).double().numpy()


def _step_metrics(
    x: np.ndarray,
    y: np.ndarray,
    frame: Frame,
    grads: tuple[np.ndarray, np.ndarray],
    params: dict[str, Any],
    with_aa: bool,
) -> tuple[dict[str, Any], dict[str, np.ndarray], ResidualBlocks]:
    pm = paired_moments(x, y, frame=frame, image_name="probe images", text_name="probe texts")
    scalars, arrays = frame_summary(pm)
    scalars = {k: v for k, v in scalars.items() if not isinstance(v, dict)}  # sweeps: static stage only
    # U_t: the current top-r eigenspace of the probe covariances (same r as the frame).
    _, q_t = top_eigvecs(pm.cov_x + pm.cov_y, frame.rank)
    scalars["sin_theta"] = sin_theta(frame.q_u, q_t)
    scalars.update(leakage(frame, list(grads)))
    g_delta = (grads[0] - grads[1]) @ frame.q_u  # the gradient that moves Delta_i (spec 1.8)
    g_delta = g_delta - g_delta.mean(axis=0)
    grad_cov_u = g_delta.T @ g_delta / g_delta.shape[0]
    blocks = ResidualBlocks.from_cov(frame, pm.sigma_r)
    scalars.update(spectral_locking(blocks.uu, grad_cov_u))
    arrays["eig_grad_U"] = eigh_desc(grad_cov_u)[0]
    ph = phantom_summary(pm.mu_y, pm.cov_y, n_mc=int(params["phantom_mc"]), seed=params["seed"])
    scalars["phantom_tangential"] = ph["phantom_tangential_mc"]
    scalars["phantom_tangential_2nd"] = ph["phantom_tangential_2nd"]
    if with_aa:
        marg = MarginalStats(
            _marginal(pm.mu_x, pm.cov_x, pm.n, "probe images"), _marginal(pm.mu_y, pm.cov_y, pm.n, "probe texts")
        )
        msum = marg.summary()
        aa = aniso_summary(pm, {frame.rank: frame.q_u}, ks=(1,), random_draws=0)
        scalars.update(
            {
                "C_lambda": msum["C_lambda"],
                **{f"O_{q}": v for q, v in msum["O_q"].items() if q in ("8", "32", "128")},
                "G_mu": msum["G_mu"],
                "G_Sigma": msum["G_Sigma"],
                "A_r": aa["A_r"],
                "d_eff_over_d": aa["d_eff_over_d"],
                "R_dist": aa["R_dist"],
                "eta_U": coverage(pm.sigma_r, frame.q_u),
            }
        )
    return scalars, arrays, blocks


def _marginal(mean: np.ndarray, cov: np.ndarray, n: int, name: str) -> Marginal:
    eigs, vecs = eigh_desc(cov)
    return Marginal(name, n, mean, cov, eigs, vecs)


def run_dynamics(
    manifest: str | Path,
    out_dir: str | Path,
    params: dict[str, Any] | None = None,
    *,
    dataset: str | None = None,
) -> dict[str, Any]:
    """Train, log every ``log_every`` steps, write ``log.csv``, ``arrays.npz``, ``frame.npz``, ``summary.json``.

    Steps: seed and build the model, load and check the pairs, train while logging, summarise and write.
    The seeded draws happen in this order (model init, probe subset, batch order): keep it.
    """
    import open_clip
    import pandas as pd
    import torch

    params = merge_params(params)
    manifest, out_dir = Path(manifest), Path(out_dir)
    torch.set_num_threads(int(params["threads"]))
    torch.manual_seed(params["seed"])
    rng = np.random.default_rng(params["seed"])
    name = register_model(int(params["embed_dim"]))
    model = open_clip.create_model(name, pretrained=None)
    model.logit_scale.data.fill_(math.log(1 / params["init_temperature"]))
    train_x, train_t, probe = _load_pairs(manifest, params, rng, open_clip.get_tokenizer(name))
    t_start = time.perf_counter()
    log_state = _train(model, train_x, train_t, probe, params, rng, t_start)

    table = pd.DataFrame(log_state.rows)
    frame, rows, freeze_step = log_state.frame, log_state.rows, log_state.freeze_step
    final = _window_summary(frame, log_state.window_u, log_state.window_v, log_state.per_step, rows)
    final.update(
        {k: rows[-1][k] for k in ("loss", "temperature", "leak_ref", "sin_theta", "pob_drift", "pob_stability")}
    )
    d = int(params["embed_dim"])
    summary = {
        "dataset": dataset or manifest.parent.name,
        "model": name,
        "model_config": model_config(d),
        "params": params,
        "steps": int(params["steps"]),
        "embed_dim": d,
        "n_train": int(train_x.shape[0]),
        "n_probe": int(probe.images.shape[0]),
        "freeze_step": freeze_step,
        "rank_u": frame.rank,
        "final": final,
        "versions": {"torch": torch.__version__, "open_clip": open_clip.__version__},
        "environment": environment(),
    }
    # Undefined statistics (a cosine of a zero vector, a mean over no frozen step) are null: JSON has no NaN.
    summary["final"] = {k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in final.items()}
    # All four files or none: staged next to out_dir and swapped in. Wall time goes to timing.json
    # (it differs between identical runs; nothing reads it).
    with staged_dir(out_dir) as tmp:
        write_text_atomic(tmp / "log.csv", table.to_csv(index=False, float_format="%.10g"))
        _save_npz(tmp / "arrays.npz", _stack_ragged(log_state.per_step) | {"step": table["step"].to_numpy()})
        _save_npz(tmp / "frame.npz", {"q_u": frame.q_u, "eigs": frame.eigs, "t0": np.array(freeze_step)})
        write_json_atomic(tmp / "summary.json", summary)
        write_json_atomic(tmp / "timing.json", {"wall_seconds": time.perf_counter() - t_start})
    return summary


def _load_pairs(manifest: Path, params: dict[str, Any], rng: np.random.Generator, tokenizer: Any) -> tuple:
    """Normalised train pixels, their tokens, and the probe set (capped at ``max_probe`` by ``rng``)."""
    import open_clip
    import torch

    root = Path(params["root"]) if params["root"] else Path.cwd()
    # Mean/std normalisation of the pixels, as open_clip's preprocessing does.
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    tr_img, tr_cap = load_split(manifest, list(params["train_splits"]), root, IMAGE_SIZE)
    pr_img, pr_cap = load_split(manifest, list(params["probe_splits"]), root, IMAGE_SIZE)
    need = int(params["min_probe_factor"]) * int(params["embed_dim"])
    if pr_img.shape[0] < need:
        raise InvalidEmbeddingsError(
            f"{manifest}: probe splits {params['probe_splits']} hold {pr_img.shape[0]} pairs; "
            f"the dynamics study needs at least {need} (= {params['min_probe_factor']} x d)"
        )
    if tr_img.shape[0] < params["batch_size"]:
        raise InvalidEmbeddingsError(
            f"{manifest}: train splits hold {tr_img.shape[0]} pairs, fewer than one batch ({params['batch_size']})"
        )
    if pr_img.shape[0] > int(params["max_probe"]):
        keep = np.sort(rng.choice(pr_img.shape[0], size=int(params["max_probe"]), replace=False))
        pr_img, pr_cap = pr_img[keep], [pr_cap[i] for i in keep]
    train_x = (torch.from_numpy(tr_img) - mean) / std
    probe = _Probe((torch.from_numpy(pr_img) - mean) / std, tokenizer(pr_cap))
    return train_x, tokenizer(tr_cap), probe


@dataclass
class _LogState:
    """What the logging steps accumulate: the frame (refit until the freeze step), rows, arrays, windows."""

    freeze_step: int
    window_start: int
    frame: Frame | None = None
    gamma_ref: np.ndarray | None = None
    gamma_prev: np.ndarray | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    per_step: dict[str, list[np.ndarray]] = field(default_factory=dict)
    window_u: list[np.ndarray] = field(default_factory=list)
    window_v: list[np.ndarray] = field(default_factory=list)


def _train(
    model: Any,
    train_x: Any,
    train_t: Any,
    probe: _Probe,
    params: dict[str, Any],
    rng: np.random.Generator,
    t_start: float,
) -> _LogState:
    """The contrastive run: steps 0..steps, measuring every ``log_every`` (before that step's update)."""
    import torch
    import torch.nn.functional as F

    opt = torch.optim.AdamW(model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"], foreach=True)
    steps, log_every = int(params["steps"]), int(params["log_every"])
    state = _LogState(int(params["freeze_fraction"] * steps), steps - int(params["window_fraction"] * steps))
    n_train = train_x.shape[0]
    order = rng.permutation(n_train)
    cursor = 0
    for step in range(steps + 1):
        if cursor + params["batch_size"] > n_train:
            order, cursor = rng.permutation(n_train), 0
        idx = torch.from_numpy(order[cursor : cursor + params["batch_size"]])
        cursor += params["batch_size"]
        lr = _lr_at(step, params)
        for group in opt.param_groups:
            group["lr"] = lr
        logging_step = step % log_every == 0
        img_emb = model.encode_image(train_x[idx], normalize=True)
        txt_emb = model.encode_text(train_t[idx], normalize=True)
        if logging_step:
            img_emb.retain_grad()
            txt_emb.retain_grad()
        scale = model.logit_scale.exp()
        logits = scale * img_emb @ txt_emb.T
        labels = torch.arange(logits.shape[0])
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if logging_step:
            grads = (img_emb.grad.double().numpy(), txt_emb.grad.double().numpy())
            scalars = {"lr": lr, "loss": float(loss.detach()), "temperature": float(1 / scale.detach())}
            _log_step(state, model, probe, grads, step, scalars, params)
            if step % (log_every * 20) == 0:
                log.info("step %d/%d loss %.3f (%.0fs)", step, steps, scalars["loss"], time.perf_counter() - t_start)
        if step < steps:
            opt.step()
    return state


def _log_step(
    state: _LogState,
    model: Any,
    probe: _Probe,
    grads: tuple,
    step: int,
    scalars: dict[str, float],
    params: dict[str, Any],
) -> None:
    """Measure the probe set at this step: refit the frame (until frozen), the row, arrays and windows."""
    x, y = probe.embed(model)
    frozen = state.frame is not None and step > state.freeze_step
    if not frozen:  # the reference basis follows the probe set until t0, then stays fixed
        state.frame = fit_frame(np.cov(x.T, bias=True), np.cov(y.T, bias=True), energy=params["frame_energy"])
    with_aa = (step // int(params["log_every"])) % int(params["aa_every"]) == 0
    # Small (d x d) numpy work: one BLAS thread avoids spin-waiting next to torch's threads.
    with threadpool_limits(limits=1, user_api="blas"):
        metrics, arrays, blocks = _step_metrics(x, y, state.frame, grads, params, with_aa)
    _, gamma = mean_bias(state.frame, x.mean(0) - y.mean(0))
    if state.gamma_ref is None and step >= state.freeze_step:
        state.gamma_ref = gamma
    prev, ref = state.gamma_prev, state.gamma_ref
    state.rows.append(
        {
            "step": step,
            **scalars,
            "frame_frozen": bool(step >= state.freeze_step),
            **metrics,
            "pob_drift": pob_drift(gamma, ref) if ref is not None else float("nan"),
            "pob_stability": cosine(gamma, prev) if prev is not None else float("nan"),
            "drift_ratio": pob_drift(gamma, prev) if prev is not None else float("nan"),
        }
    )
    state.gamma_prev = gamma
    arrays["gamma"] = gamma
    for key, value in arrays.items():
        state.per_step.setdefault(key, []).append(np.asarray(value, dtype=np.float64))
    if step >= state.window_start and step >= state.freeze_step:
        state.window_u.append(blocks.uu)
        state.window_v.append(blocks.vv)


def _window_summary(
    frame: Frame, window_u: list[np.ndarray], window_v: list[np.ndarray], per_step: dict, rows: list[dict]
) -> dict[str, Any]:
    """kappa_eff and angle(gamma, v_1) on the window-averaged covariances (Lemma B.9: never pooled)."""
    if not window_u:
        return {}
    bar_u, bar_v = window_average(window_u), window_average(window_v)
    eig_u, _ = eigh_desc(bar_u)
    eig_v, vec_v = eigh_desc(bar_v)
    gamma = per_step["gamma"][-1]
    gamma_v = frame.q_v.T @ gamma
    cos = abs(float(vec_v[:, 0] @ gamma_v)) / max(np.linalg.norm(gamma_v), 1e-300)
    late = [r for r in rows if r["frame_frozen"]]
    return {
        "kappa_eff_bar_U": kappa_eff(eig_u),
        "kappa_eff_bar_V": kappa_eff(eig_v),
        "angle_gamma_v1_bar": float(np.degrees(np.arccos(min(1.0, cos)))),
        "window_points": len(window_u),
        "mean_pob_stability_frozen": float(np.nanmean([r["pob_stability"] for r in late])) if late else None,
        # the whole frozen window, not the last row (at lr = 0 there, stability is 1 trivially)
        "min_pob_stability_frozen": float(np.nanmin([r["pob_stability"] for r in late])) if late else None,
        "max_leak_minus_sin_theta_frozen": float(max(r["leak_ref"] - r["sin_theta"] for r in late)) if late else None,
    }


def _stack_ragged(per_step: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack per-step arrays; spectra whose length changes (r before the freeze) are NaN-padded."""
    out = {}
    for key, values in per_step.items():
        width = max(v.size for v in values)
        stacked = np.full((len(values), width), np.nan)
        for i, v in enumerate(values):
            stacked[i, : v.size] = v.ravel()
        out[key] = stacked
    return out


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
