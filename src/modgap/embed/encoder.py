"""One embedding backend for every tier: an open_clip model (built-in, registered or hub name).

``load_encoder`` builds the model with ``open_clip.create_model_and_transforms`` so that the
embedded LiT checkpoint and paper-tier CLIP models go through the same code. Encoders return
float32, L2-normalised numpy rows. Inference runs in ``eval()`` + ``inference_mode``; on CUDA the
requested reduced precision is applied with ``torch.autocast`` (weights stay fp32), on CPU only
bf16 autocast is allowed and only when asked for, so the default CPU path is plain fp32 and
bit-reproducible for a fixed batch layout.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from modgap.embed.models import register_project_models, trim_padding_columns
from modgap.errors import ChecksumError, ConfigError, ModgapError
from modgap.io import sha256_bytes, sha256_file

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class ImageReadError(ModgapError):
    """An image file is missing, unreadable or not a decodable image; the message names it."""


@dataclass(frozen=True)
class ImageItem:
    """An image to encode: its path and, optionally, the sha256 the manifest promises for it."""

    path: Path
    sha256: str | None = None


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"device: {device!r} is not a torch device") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {device!r} requested but CUDA is not available")
    return resolved


def load_rgb(item: ImageItem | str | os.PathLike[str]) -> Image.Image:
    """Read an image as RGB, compositing any transparency onto white (clip art and emoji have alpha).

    When the item carries a sha256, the bytes are checked against it before decoding.
    """
    if not isinstance(item, ImageItem):
        item = ImageItem(Path(item))
    try:
        data = item.path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageReadError(f"{item.path}: image file does not exist") from exc
    except OSError as exc:
        raise ImageReadError(f"{item.path}: cannot read image file: {exc}") from exc
    if item.sha256 and sha256_bytes(data) != item.sha256:
        raise ChecksumError(f"{item.path}: sha256 {sha256_bytes(data)} does not match manifest {item.sha256}")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return _to_rgb(img)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        # SyntaxError: PIL raises it for some malformed headers (e.g. truncated PNG chunks).
        raise ImageReadError(f"{item.path}: not a readable image ({type(exc).__name__}: {exc})") from exc


def _to_rgb(img: Image.Image) -> Image.Image:
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if not has_alpha:
        return img.convert("RGB")
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


class _ImageDataset(torch.utils.data.Dataset):
    def __init__(self, items: Sequence[ImageItem], transform: Any) -> None:
        self.items = items
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(load_rgb(self.items[index]))


@dataclass
class OpenClipEncoder:
    """A loaded open_clip model with its inference transform and tokenizer."""

    model_name: str
    pretrained: str | None
    checkpoint_path: str | None
    checkpoint_sha256: str | None
    device: torch.device
    precision: str
    model: torch.nn.Module = field(repr=False)
    preprocess: Any = field(repr=False)
    tokenizer: Any = field(repr=False)
    num_workers: int = 0
    embed_dim: int = 0  # filled in by load_encoder from a one-caption probe
    weights_sha256: str | None = None  # hash of the loaded tensors when no checkpoint file pins them

    def identity(self) -> dict[str, Any]:
        """What determines the embeddings besides the inputs (used for cache keys and meta.json)."""
        return {
            "model_name": self.model_name,
            "pretrained": self.pretrained,
            "checkpoint_path": self.checkpoint_path,
            "checkpoint_sha256": self.checkpoint_sha256,
            "weights_sha256": self.weights_sha256,
            "precision": self.precision,
            "device_type": self.device.type,
            "preprocess": repr(self.preprocess),
        }

    def preprocessing(self) -> dict[str, Any]:
        cfg = dict(getattr(getattr(self.model, "visual", None), "preprocess_cfg", {}) or {})
        return {
            "transform": repr(self.preprocess),
            "image_size": list(cfg["size"]) if isinstance(cfg.get("size"), tuple) else cfg.get("size"),
            "mean": list(cfg.get("mean", ())) or None,
            "std": list(cfg.get("std", ())) or None,
            "interpolation": cfg.get("interpolation"),
            "resize_mode": cfg.get("resize_mode"),
            "alpha": "composited onto white, then RGB",
            "tokenizer": type(self.tokenizer).__name__,
            "context_length": getattr(self.tokenizer, "context_length", None),
        }

    def _autocast(self) -> Any:
        dtype = _AUTOCAST_DTYPES.get(self.precision)
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None)

    def encode_images(
        self,
        paths: Sequence[ImageItem | str | os.PathLike[str]],
        batch_size: int = 64,
        progress: bool | tqdm = True,
    ) -> np.ndarray:
        """Encode images (paths or :class:`ImageItem`) into an (n, d) float32 unit-norm array."""
        items = [p if isinstance(p, ImageItem) else ImageItem(Path(p)) for p in paths]
        loader = torch.utils.data.DataLoader(
            _ImageDataset(items, self.preprocess),
            batch_size=batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        out: list[np.ndarray] = []
        with _Progress(progress, len(items), "images") as bar, torch.inference_mode(), self._autocast():
            try:
                for pixels in loader:
                    pixels = pixels.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                    out.append(_normalise(self.model.encode_image(pixels)))
                    bar.update(len(pixels))
            except ModgapError as exc:
                raise _unwrap_worker_error(exc) from None
        return _stack(out, self.embed_dim)

    def encode_texts(self, captions: Sequence[str], batch_size: int = 64, progress: bool | tqdm = True) -> np.ndarray:
        """Encode captions into an (n, d) float32 unit-norm array."""
        out: list[np.ndarray] = []
        with _Progress(progress, len(captions), "texts") as bar, torch.inference_mode(), self._autocast():
            for start in range(0, len(captions), batch_size):
                batch = list(captions[start : start + batch_size])
                tokens = trim_padding_columns(self.model, self.tokenizer(batch)).to(self.device)
                out.append(_normalise(self.model.encode_text(tokens)))
                bar.update(len(batch))
        return _stack(out, self.embed_dim)


def _unwrap_worker_error(exc: ModgapError) -> ModgapError:
    """DataLoader workers re-raise with a traceback in the message; keep the one-line original."""
    text = str(exc)
    if "Original Traceback" not in text:
        return exc
    last = text.rstrip().splitlines()[-1]  # "pkg.module.ImageReadError: <message>"
    return type(exc)(re.sub(rf"^(?:[\w.]+\.)?{type(exc).__name__}: ", "", last))


def state_dict_sha256(model: torch.nn.Module) -> str:
    """sha256 over parameter names, dtypes, shapes and bytes (identifies randomly initialised weights)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}\n".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())  # bf16-safe raw bytes
    return digest.hexdigest()


def _normalise(feats: torch.Tensor) -> np.ndarray:
    # Normalise in fp32 even under autocast so unit norms do not depend on the compute dtype.
    feats = torch.nn.functional.normalize(feats.float(), dim=-1)
    return feats.cpu().numpy().astype(np.float32, copy=False)


def _stack(blocks: list[np.ndarray], dim: int) -> np.ndarray:
    if not blocks:
        return np.zeros((0, dim), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(blocks, axis=0), dtype=np.float32)


def _probe_dim(model: torch.nn.Module, tokenizer: Any, device: torch.device) -> int:
    with torch.inference_mode():
        return int(model.encode_text(tokenizer(["probe"]).to(device)).shape[-1])


class _Progress:
    """A tqdm bar owned here, a caller's bar to update, or nothing."""

    def __init__(self, progress: bool | tqdm, total: int, unit: str) -> None:
        self._own = progress is True
        if progress is True:
            self.bar: Any = tqdm(total=total, unit=unit, desc=f"encode {unit}", mininterval=progress_interval())
        elif progress is False or progress is None:
            self.bar = None
        else:
            self.bar = progress

    def __enter__(self) -> _Progress:
        return self

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def __exit__(self, *exc: object) -> None:
        if self._own:
            self.bar.close()


def progress_interval() -> float:
    """Seconds between progress updates: lively on a terminal, sparse in a rule's log file."""
    return 0.5 if sys.stderr.isatty() else 30.0


def _resolve_checkpoint(model_name: str, pretrained: str | None) -> tuple[str | None, str | None]:
    """Return (checkpoint path, sha256) for a local file or a cached pretrained tag, if resolvable."""
    if pretrained is None:
        return None, None
    if os.path.isfile(pretrained):
        # Recorded as given (project-relative in the pipeline) so meta.json is the same on every machine.
        return pretrained, sha256_file(pretrained)
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model_name.replace("/", "-"), pretrained)
    if not cfg:
        return None, None
    try:
        # Cached after model creation, so this resolves the file without a second download.
        path = open_clip.download_pretrained(cfg)
    except Exception as exc:  # the hash is provenance only; never fail a run on it
        log.warning("could not resolve checkpoint file for %s/%s: %s", model_name, pretrained, exc)
        return None, None
    # The cache location is machine-specific: keep only the hash of a tag's weights.
    return (None, sha256_file(path)) if path else (None, None)


def load_encoder(
    model_name: str,
    pretrained: str | os.PathLike[str] | None = None,
    device: str = "auto",
    precision: str = "fp32",
    num_workers: int = 0,
) -> OpenClipEncoder:
    """Build an open_clip model for inference.

    ``pretrained`` is an open_clip tag (``"laion2b_s34b_b79k"``), a local checkpoint file, or None
    (random init, only useful in tests).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    dev = resolve_device(device)
    if dev.type == "cpu" and precision == "fp16":
        raise ConfigError("precision: fp16 autocast is not supported on CPU; use fp32 or bf16")
    pretrained = os.fspath(pretrained) if pretrained else None  # "" (an empty config value) = no weights
    if pretrained is not None and _looks_like_path(pretrained) and not os.path.isfile(pretrained):
        raise ConfigError(f"pretrained: checkpoint file {pretrained} does not exist")

    import open_clip

    register_project_models()
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = False  # autotuning picks kernels non-deterministically
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=pretrained, precision="fp32", device=dev
        )
    except RuntimeError as exc:
        raise ConfigError(f"cannot create open_clip model {model_name!r} (pretrained={pretrained!r}): {exc}") from exc
    model.eval()
    if hasattr(model, "visual"):
        # channels-last makes convolutional towers (EfficientNet's depthwise convs) ~2x faster on CPU.
        model.visual.to(memory_format=torch.channels_last)
    tokenizer = open_clip.get_tokenizer(model_name)
    ckpt_path, ckpt_sha = _resolve_checkpoint(model_name, pretrained)
    return OpenClipEncoder(
        model_name=model_name,
        pretrained=pretrained,
        checkpoint_path=ckpt_path,
        checkpoint_sha256=ckpt_sha,
        device=dev,
        precision=precision,
        model=model,
        preprocess=preprocess,
        tokenizer=tokenizer,
        num_workers=num_workers,
        embed_dim=_probe_dim(model, tokenizer, dev),
        # Without a checkpoint file the weights are whatever the RNG produced: pin them by content so
        # cached shards from a differently initialised model are never reused.
        weights_sha256=None if ckpt_sha else state_dict_sha256(model),
    )


def _looks_like_path(value: str) -> bool:
    return os.sep in value or value.endswith((".pt", ".pth", ".bin", ".safetensors", ".npz"))
