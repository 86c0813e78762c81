"""LiT-style training of the embedded encoder: both towers locked, only the projection heads learn.

Because the towers never change, their pooled features are computed once (the expensive part), and the two
linear heads plus the logit scale are trained on those cached features with open_clip's symmetric InfoNCE
loss. The trained heads are written back into the open_clip model, whose full state dict is saved as an
ordinary open_clip checkpoint.

Hyper-parameters (``DEFAULT_PARAMS``; any subset may be overridden):

* ``epochs`` (40), ``batch_size`` (256): passes over the cached train features and pairs per InfoNCE batch;
* ``lr`` (1e-3), ``weight_decay`` (0.05, heads only, not the logit scale): AdamW;
* ``warmup_fraction`` (0.1): share of all steps with linear warm-up, then cosine decay to 0;
* ``init_temperature`` (0.07): CLIP's initial softmax temperature (logit scale = 1/T, capped at 100);
* ``embed_dim`` (256), ``image_size`` (224): must equal the registered model config, recorded for provenance;
* ``seed`` (0): head initialisation and batch order; CPU training is deterministic for a fixed thread count;
* ``feature_batch_size`` (4): images per forward pass of the image tower. Kept small on purpose: at 224 px
  a batch of 8 already has activations above glibc's mmap threshold, so every forward pass maps and zeroes
  fresh pages (millions of page faults, ~2x slower on CPU) while throughput per image does not improve.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import platform
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from modgap.embed import models
from modgap.errors import ConfigError, ModgapError
from modgap.io import atomic_path, sha256_bytes, sha256_file, write_bytes_atomic, write_json_atomic
from modgap.provenance import environment

log = logging.getLogger(__name__)

DEFAULT_PARAMS: dict[str, Any] = {
    "epochs": 40,
    "batch_size": 256,
    "lr": 1e-3,
    "weight_decay": 0.05,
    "warmup_fraction": 0.1,
    "init_temperature": 0.07,
    "embed_dim": models.EMBED_DIM,
    "seed": 0,
    "image_size": models.IMAGE_SIZE,
    "feature_batch_size": 4,
}
_INT_PARAMS = ("epochs", "batch_size", "embed_dim", "seed", "image_size", "feature_batch_size")
_MAX_LOGIT_SCALE = math.log(100.0)  # CLIP's cap on 1/temperature
MANIFEST_COLUMNS = ("id", "image_path", "caption", "split")


def resolve_params(params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults overridden by ``params``; unknown keys, wrong types and out-of-range values raise ConfigError."""
    merged = dict(DEFAULT_PARAMS)
    for key, value in (params or {}).items():
        if key not in DEFAULT_PARAMS:
            raise ConfigError(f"encoder params: unknown key {key!r} (known: {', '.join(sorted(DEFAULT_PARAMS))})")
        merged[key] = value
    for key, value in merged.items():
        want = int if key in _INT_PARAMS else float
        if isinstance(value, bool) or not isinstance(value, int | float) or (want is int and value != int(value)):
            raise ConfigError(f"encoder params: {key} must be {want.__name__}, got {value!r}")
        merged[key] = want(value)
    for key in ("epochs", "batch_size", "feature_batch_size", "lr", "init_temperature"):
        if merged[key] <= 0:
            raise ConfigError(f"encoder params: {key} must be positive, got {merged[key]}")
    if merged["batch_size"] < 2:
        raise ConfigError("encoder params: batch_size must be at least 2 (InfoNCE needs negatives)")
    if not 0 <= merged["warmup_fraction"] < 1 or merged["weight_decay"] < 0:
        raise ConfigError("encoder params: warmup_fraction must be in [0, 1) and weight_decay >= 0")
    # The checkpoint must load through the registered config, which fixes these two.
    for key, fixed in (("embed_dim", models.EMBED_DIM), ("image_size", models.IMAGE_SIZE)):
        if merged[key] != fixed:
            raise ConfigError(f"encoder params: {key} must be {fixed} (the registered {models.MODEL_NAME} config)")
    return merged


def load_split(manifest: str | Path, split: str, root: str | Path = ".") -> pd.DataFrame:
    """Rows of ``split`` from a prepared manifest, with ``image_path`` resolved against ``root``."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise ModgapError(f"manifest not found: {manifest}")
    frame = pd.read_parquet(manifest)
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise ModgapError(f"{manifest}: missing column(s) {', '.join(missing)}")
    rows = frame[frame["split"] == split].reset_index(drop=True)
    if len(rows) < 2:
        raise ModgapError(f"{manifest}: split {split!r} has {len(rows)} row(s), need at least 2 pairs")
    rows["image_path"] = [str(Path(root) / p) if not Path(p).is_absolute() else p for p in rows["image_path"]]
    absent = [p for p in rows["image_path"] if not Path(p).is_file()]
    if absent:
        raise ModgapError(f"{manifest}: {len(absent)} image(s) of split {split!r} not found, first {absent[0]}")
    return rows


@contextlib.contextmanager
def heads_bypassed(model: nn.Module) -> Iterator[None]:
    """Temporarily replace both projection heads by identities, so encode_* return the towers' pooled features."""
    vision_proj, text_proj = model.visual.head.proj, model.text.proj
    model.visual.head.proj, model.text.proj = nn.Identity(), nn.Identity()
    try:
        yield
    finally:
        model.visual.head.proj, model.text.proj = vision_proj, text_proj


def _progress(total: int, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="item", leave=False, mininterval=2.0)


@torch.no_grad()
def encode_images(
    model: nn.Module, preprocess: Any, paths: Sequence[str], batch_size: int, desc: str = "images"
) -> np.ndarray:
    """``model.encode_image`` over image files in batches (unnormalised float32 rows)."""
    from PIL import Image, UnidentifiedImageError

    model.eval()
    model.visual.to(memory_format=torch.channels_last)  # ~2x faster depthwise convs on CPU
    chunks = []
    try:
        with _progress(len(paths), desc) as bar:
            for start in range(0, len(paths), batch_size):
                batch = []
                for path in paths[start : start + batch_size]:
                    try:
                        with Image.open(path) as img:
                            batch.append(preprocess(img.convert("RGB")))
                    except (OSError, UnidentifiedImageError) as exc:
                        raise ModgapError(f"cannot read image {path}: {exc}") from exc
                pixels = torch.stack(batch).contiguous(memory_format=torch.channels_last)
                chunks.append(model.encode_image(pixels).float().numpy())
                bar.update(len(batch))
    finally:
        model.visual.to(memory_format=torch.contiguous_format)
    return np.concatenate(chunks).astype(np.float32, copy=False)


@torch.no_grad()
def encode_texts(model: nn.Module, tokenizer: Any, captions: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """``model.encode_text`` over captions in batches (unnormalised float32 rows).

    The tokenizer pads every caption to the context length (77); trailing columns that are padding in the
    whole batch are dropped first. The HF text tower masks padding, so the output is unchanged (to float
    rounding) while short captions cost ~8x less.
    """
    model.eval()
    chunks = []
    for start in range(0, len(captions), batch_size):
        tokens = models.trim_padding_columns(model, tokenizer(list(captions[start : start + batch_size])))
        chunks.append(model.encode_text(tokens).float().numpy())
    return np.concatenate(chunks).astype(np.float32, copy=False)


def tower_features(
    model: nn.Module, preprocess: Any, tokenizer: Any, rows: pd.DataFrame, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled (pre-projection) image and text features of the locked towers for ``rows``."""
    with heads_bypassed(model):
        started = time.perf_counter()
        image = encode_images(model, preprocess, list(rows["image_path"]), batch_size, desc="tower features")
        middle = time.perf_counter()
        text = encode_texts(model, tokenizer, list(rows["caption"]))
    log.info(
        "tower features of %d pairs: images %.1fs, texts %.1fs",
        len(rows),
        middle - started,
        time.perf_counter() - middle,
    )
    return image, text


def features_sha256(image: np.ndarray, text: np.ndarray) -> str:
    return sha256_bytes(np.ascontiguousarray(image).tobytes() + np.ascontiguousarray(text).tobytes())


def _lr_lambda(total_steps: int, warmup_steps: int) -> Any:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    # A trailing batch of one pair has no negatives, so it is merged into the previous one.
    parts = list(torch.split(order, batch_size))
    if len(parts) > 1 and len(parts[-1]) < 2:
        parts[-2] = torch.cat([parts[-2], parts.pop()])
    return parts


def _mean_loss(model: nn.Module, loss_fn: nn.Module, img: torch.Tensor, txt: torch.Tensor, bs: int) -> float:
    with torch.no_grad():
        losses = [
            float(_batch_loss(model, loss_fn, img[idx], txt[idx])) * len(idx) for idx in _batches(len(img), bs, None)
        ]
    return sum(losses) / len(img)


def _batch_loss(model: nn.Module, loss_fn: nn.Module, img: torch.Tensor, txt: torch.Tensor) -> torch.Tensor:
    image = nn.functional.normalize(model.visual.head(img), dim=-1)
    text = nn.functional.normalize(model.text.proj(txt), dim=-1)
    return loss_fn(image, text, model.logit_scale.exp())


def train_heads(
    model: nn.Module, image_features: np.ndarray, text_features: np.ndarray, params: Mapping[str, Any]
) -> dict[str, Any]:
    """Train the projection heads and logit scale of ``model`` in place on cached tower features."""
    from open_clip.loss import ClipLoss

    p = resolve_params(params)
    img, txt = torch.from_numpy(image_features).float(), torch.from_numpy(text_features).float()
    if len(img) != len(txt) or len(img) < 2:
        raise ModgapError(f"need at least 2 paired features, got {len(img)} images and {len(txt)} texts")
    for param in model.parameters():
        param.requires_grad_(False)
    heads = [model.visual.head.proj.weight, model.text.proj.weight]
    for param in [*heads, model.logit_scale]:
        param.requires_grad_(True)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1.0 / p["init_temperature"]))

    generator = torch.Generator().manual_seed(p["seed"])
    steps_per_epoch = len(_batches(len(img), p["batch_size"], None))
    total_steps = steps_per_epoch * p["epochs"]
    optimizer = torch.optim.AdamW(
        [
            {"params": heads, "weight_decay": p["weight_decay"]},
            {"params": [model.logit_scale], "weight_decay": 0.0},  # as in CLIP: no decay on gains/scales
        ],
        lr=p["lr"],
    )
    warmup = round(p["warmup_fraction"] * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(total_steps, warmup))
    loss_fn = ClipLoss()  # symmetric InfoNCE (mean of image->text and text->image cross-entropy)

    model.eval()  # no dropout anywhere; the heads are plain linear maps
    loss_initial = _mean_loss(model, loss_fn, img, txt, p["batch_size"])
    epoch_losses = []
    for _ in range(p["epochs"]):
        total = 0.0
        for idx in _batches(len(img), p["batch_size"], generator):
            loss = _batch_loss(model, loss_fn, img[idx], txt[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, _MAX_LOGIT_SCALE)
            total += float(loss.detach()) * len(idx)
        epoch_losses.append(total / len(img))
    for param in model.parameters():
        param.requires_grad_(False)
    return {
        "loss_initial": loss_initial,
        "loss_final": _mean_loss(model, loss_fn, img, txt, p["batch_size"]),
        "loss_per_epoch": epoch_losses,
        "steps": total_steps,
        "logit_scale_final": float(model.logit_scale.exp()),
    }


def save_open_clip_checkpoint(model: nn.Module, path: str | Path, epochs: int) -> str:
    """Write ``model``'s full state dict in open_clip's checkpoint layout (atomically); return its sha256."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # Serialise in memory: torch.save names the zip records after the target file, and the atomic temporary
    # name is random, which would make identical weights hash differently.
    buffer = io.BytesIO()
    torch.save({"epoch": epochs, "name": models.MODEL_NAME, "state_dict": state}, buffer)
    write_bytes_atomic(path, buffer.getvalue())
    return sha256_bytes(buffer.getvalue())


def _cache_key(rows: pd.DataFrame, p: Mapping[str, Any]) -> str:
    # Everything the locked towers' features depend on: inputs, architecture, weights, input size.
    ident = {
        "ids": list(rows["id"]),
        "captions": list(rows["caption"]),
        "images": list(rows["image_path"]),
        "sha256": [str(v) for v in rows["sha256"]] if "sha256" in rows.columns else None,
        "model": models.MODEL_NAME,
        "image_size": p["image_size"],
        "weights": models.efficientnet_lite0_weights_path().name,
        "versions": _versions(),
        "environment": environment(),
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def _cached_tower_features(
    model: nn.Module, preprocess: Any, tokenizer: Any, rows: pd.DataFrame, p: Mapping[str, Any], cache: Path | None
) -> tuple[np.ndarray, np.ndarray, bool]:
    key = _cache_key(rows, p)
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            if str(data["key"]) == key:
                log.info("tower features from cache %s", cache)
                return data["image"], data["text"], True
    image, text = tower_features(model, preprocess, tokenizer, rows, p["feature_batch_size"])
    if cache is not None:
        with atomic_path(cache) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, key=np.array(key), image=image, text=text)
    return image, text, False


def _versions() -> dict[str, str]:
    import open_clip
    import timm
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "timm": timm.__version__,
        "transformers": transformers.__version__,
    }


def train_lit(
    manifest: str | Path,
    out_dir: str | Path,
    params: Mapping[str, Any] | None = None,
    root: str | Path = ".",
    feature_cache: str | Path | None = None,
) -> dict[str, Any]:
    """Train the LiT heads on the manifest's ``train`` split; write ``open_clip.pt`` and ``train.json``.

    Returns the record written to ``train.json``. ``feature_cache`` (optional ``.npz``) stores the locked
    towers' features keyed by their inputs, so re-training with other head hyper-parameters skips them.
    """
    started = time.perf_counter()
    p = resolve_params(params)
    out_dir = Path(out_dir)
    rows = load_split(manifest, "train", root)
    torch.manual_seed(p["seed"])  # head initialisation
    model, preprocess, tokenizer = models.create_untrained_model()

    t0 = time.perf_counter()
    image, text, cached = _cached_tower_features(
        model, preprocess, tokenizer, rows, p, Path(feature_cache) if feature_cache else None
    )
    feature_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    history = train_heads(model, image, text, p)
    train_seconds = time.perf_counter() - t0

    checkpoint = out_dir / "open_clip.pt"
    checkpoint_sha = save_open_clip_checkpoint(model, checkpoint, p["epochs"])
    record = {
        "model_name": models.MODEL_NAME,
        "params": p,
        "manifest": str(manifest),
        "manifest_sha256": sha256_file(manifest),
        "n_train": len(rows),
        **history,
        "feature_sha256": features_sha256(image, text),
        "features_from_cache": cached,
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": checkpoint_sha,
        "seconds": {
            "features": round(feature_seconds, 3),
            "heads": round(train_seconds, 3),
            "wall": round(time.perf_counter() - started, 3),
        },
        "torch_threads": torch.get_num_threads(),
        "versions": _versions(),
        "environment": environment(),
    }
    write_json_atomic(out_dir / "train.json", record)
    log.info(
        "LiT heads trained on %d pairs: loss %.3f -> %.3f in %.1fs",
        len(rows),
        history["loss_initial"],
        history["loss_final"],
        record["seconds"]["wall"],
    )
    return record
