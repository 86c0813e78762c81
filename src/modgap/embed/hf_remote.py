"""The ``llm2clip`` encoder backend: an HF model with remote code (LLM2CLIP-Openai-L-14-336 style).

As in the authors' ``embed.py`` (``Yu-xm/ReVision``, spec revision-mllm §2), two models are loaded
with ``AutoModel.from_pretrained(..., trust_remote_code=True, revision=<pinned commit>)``:

* the CLIP side (``model``): images go through a ``CLIPImageProcessor`` (336 px, OpenAI mean/std)
  into ``get_image_features``; pooled LLM features go into ``get_text_features``;
* the LLM2Vec side (``text_model``): each caption is wrapped as LLM2Vec wraps it for Llama-3
  (``text_prefix`` + caption + ``text_suffix``), tokenised with left padding and ``max_length`` 512,
  and the last hidden states are mean-pooled over the caption tokens (LLM2Vec ``pooling_mode="mean"``
  with ``skip_instruction``: the prefix and BOS are not pooled).

Both outputs are L2-normalised in fp32. Unlike the authors' code (zero vectors for unreadable images,
silently dropped later), an unreadable image, a NaN/Inf or zero row, or a dimension other than the
configured ``embed_dim`` raises an error naming the model. Weights load in the precision's dtype
(``bf16`` as the authors ran it on GPU; ``fp32`` on CPU by default).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modgap.embed.encoder import ImageItem, _Progress, load_rgb, resolve_device
from modgap.embed.hf_options import BACKEND, OPENAI_MEAN, OPENAI_STD, check_options
from modgap.errors import ConfigError, InvalidEmbeddingsError, ModgapError
from modgap.io import sha256_file

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def folder_sha256(folder: str | os.PathLike[str]) -> str:
    """sha256 over (relative path, file sha256) of every file in a model folder (code, config, weights)."""
    root = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(f"{path.relative_to(root).as_posix()}|{sha256_file(path)}\n".encode())
    return digest.hexdigest()


@dataclass
class LLM2ClipEncoder:
    """A loaded LLM2CLIP-style pair: CLIP side + LLM2Vec text side (the EncoderBackend interface)."""

    model_name: str
    options: dict[str, Any]
    device: torch.device
    precision: str
    model: Any = field(repr=False)
    text_model: Any = field(repr=False)
    tokenizer: Any = field(repr=False)
    processor: Any = field(repr=False)
    num_workers: int = 0
    embed_dim: int = 0
    weights_sha256: str | None = None  # local folders: hash of both folders; Hub models: pinned by revision
    pretrained: str | None = None  # the pinned revision (meta.json's model.pretrained)
    checkpoint_path: str | None = None
    checkpoint_sha256: str | None = None

    def identity(self) -> dict[str, Any]:
        keys = ("revision", "text_model", "text_revision", "text_max_length", "text_prefix", "text_suffix")
        return {
            "backend": BACKEND,
            "model_name": self.model_name,
            **{k: self.options[k] for k in keys},
            "weights_sha256": self.weights_sha256,
            "precision": self.precision,
            "device_type": self.device.type,
            "preprocess": self.preprocessing(),
        }

    def preprocessing(self) -> dict[str, Any]:
        p = self.processor
        return {
            "processor": type(p).__name__,
            "image_size": self.options["image_size"],
            "resize_shortest_edge": dict(p.size).get("shortest_edge"),
            "crop_size": [p.crop_size["height"], p.crop_size["width"]],
            "mean": list(p.image_mean),
            "std": list(p.image_std),
            "interpolation": "bicubic",
            "alpha": "composited onto white, then RGB",
            "tokenizer": type(self.tokenizer).__name__,
            "context_length": self.options["text_max_length"],
            "text_pooling": "mean over caption tokens (LLM2Vec skip_instruction)",
        }

    def encode_images(self, items: Sequence[Any], batch_size: int = 64, progress: Any = True) -> np.ndarray:
        items = [p if isinstance(p, ImageItem) else ImageItem(Path(p)) for p in items]
        out: list[np.ndarray] = []
        with _Progress(progress, len(items), "images") as bar, torch.inference_mode():
            for start in range(0, len(items), batch_size):
                batch = items[start : start + batch_size]
                out.append(self._encode_rgb([load_rgb(i) for i in batch], start))
                bar.update(len(batch))
        return self._stack(out)

    def encode_pil_images(self, images: Sequence[Any], batch_size: int = 64) -> np.ndarray:
        """Decoded RGB images (the lmms-eval plugin's task images) through the same processor and tower."""
        with torch.inference_mode():
            out = [
                self._encode_rgb(list(images[start : start + batch_size]), start)
                for start in range(0, len(images), batch_size)
            ]
        return self._stack(out)

    def _encode_rgb(self, images: list[Any], start: int) -> np.ndarray:
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
        feats = self.model.get_image_features(pixels.to(self.device, dtype=self._dtype))
        return self._normalise(feats, "image", start)

    def encode_texts(self, captions: Sequence[str], batch_size: int = 64, progress: Any = True) -> np.ndarray:
        out: list[np.ndarray] = []
        with _Progress(progress, len(captions), "texts") as bar, torch.inference_mode():
            for start in range(0, len(captions), batch_size):
                batch = list(captions[start : start + batch_size])
                pooled = self._llm2vec(batch)
                feats = self.model.get_text_features(pooled.to(self._dtype))
                out.append(self._normalise(feats, "text", start))
                bar.update(len(batch))
        return self._stack(out)

    @property
    def _dtype(self) -> torch.dtype:
        return _DTYPES[self.precision]

    def _llm2vec(self, captions: list[str]) -> torch.Tensor:
        """Mean of the last hidden states over each caption's own tokens (LLM2Vec, pooling_mode="mean")."""
        o = self.options
        # LLM2Vec strips the caption's trailing whitespace and pools over caption + suffix tokens,
        # counted by tokenising that part alone; the prefix and BOS only provide context.
        parts = [c.rstrip() + o["text_suffix"] for c in captions]
        tok = self.tokenizer
        full = tok(
            [o["text_prefix"] + p for p in parts],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=o["text_max_length"],
        )
        mask = torch.zeros_like(full["attention_mask"])
        for row, part in enumerate(parts):
            n = len(tok(part, add_special_tokens=False, truncation=True, max_length=o["text_max_length"])["input_ids"])
            # A caption beyond max_length is cut by the tokenizer (LLM2Vec first drops words to fit
            # doc_max_length); captions of the papers' data are far shorter.
            n = min(n, int(full["attention_mask"][row].sum()))
            if n == 0:
                raise ModgapError(f"{self.model_name}: caption {start_text(captions[row])!r} has no tokens")
            mask[row, -n:] = 1  # left padding: the caption's tokens are the last n positions
        hidden = self.text_model(
            input_ids=full["input_ids"].to(self.device), attention_mask=full["attention_mask"].to(self.device)
        ).last_hidden_state.float()
        mask = mask.to(self.device).unsqueeze(-1).float()
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1)

    def _normalise(self, feats: torch.Tensor, modality: str, start: int) -> np.ndarray:
        feats = feats.float()
        if feats.ndim != 2 or feats.shape[1] != self.embed_dim:
            raise InvalidEmbeddingsError(
                f"{self.model_name}: {modality} features have shape {tuple(feats.shape)}, "
                f"expected (n, {self.embed_dim})"
            )
        norms = feats.norm(dim=-1)
        bad = (~torch.isfinite(feats).all(dim=-1)) | (norms <= 0)
        if bool(bad.any()):
            row = start + int(torch.nonzero(bad)[0])
            raise InvalidEmbeddingsError(
                f"{self.model_name}: {modality} row {row} is NaN/Inf or zero before normalisation "
                f"({int(bad.sum())} bad row(s) in this batch); no zero vectors are written"
            )
        return (feats / norms.unsqueeze(-1)).cpu().numpy().astype(np.float32, copy=False)

    def _stack(self, blocks: list[np.ndarray]) -> np.ndarray:
        if not blocks:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(blocks, axis=0), dtype=np.float32)


def start_text(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[:n] + "..."


def image_processor(image_size: int) -> Any:
    """The OpenAI CLIP preprocessing at ``image_size`` (resize shortest edge, bicubic, centre crop)."""
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        resample=3,  # PIL bicubic, as in the OpenAI preprocessor_config.json
        do_center_crop=True,
        do_normalize=True,
        do_rescale=True,
        do_convert_rgb=True,
        image_mean=list(OPENAI_MEAN),
        image_std=list(OPENAI_STD),
    )


def load_llm2clip(
    model_name: str,
    pretrained: str | None,
    device: str = "auto",
    precision: str = "fp32",
    num_workers: int = 0,
    **options: Any,
) -> LLM2ClipEncoder:
    """Load both sides with ``trust_remote_code`` at their pinned revisions.

    ``pretrained`` may repeat ``revision`` (the open_clip-style slot); the two must agree.
    """
    if pretrained and options.get("revision") not in (None, pretrained):
        raise ConfigError(f"{BACKEND}: pretrained {pretrained!r} and revision {options['revision']!r} disagree")
    if pretrained:
        options = {**options, "revision": pretrained}
    opts = check_options(options, f"{BACKEND} options", model_name)
    if precision not in _DTYPES:
        raise ConfigError(f"precision: {precision!r} is not one of {', '.join(_DTYPES)}")
    dev = resolve_device(device)
    if dev.type == "cpu" and precision == "fp16":
        raise ConfigError("precision: fp16 is not supported on CPU; use fp32 or bf16")
    from transformers import AutoModel, AutoTokenizer

    dtype = _DTYPES[precision]
    common = {"trust_remote_code": True, "local_files_only": opts["local_files_only"]}
    try:
        model = AutoModel.from_pretrained(model_name, revision=opts["revision"], dtype=dtype, **common)
        text_kwargs = {"revision": opts["text_revision"], **common}
        text_model = AutoModel.from_pretrained(opts["text_model"], dtype=dtype, **text_kwargs)
        tokenizer = AutoTokenizer.from_pretrained(opts["text_model"], **text_kwargs)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{BACKEND}: cannot load {model_name!r} / {opts['text_model']!r}: {exc}") from exc
    for name, m in (("model", model), ("text_model", text_model)):
        for attr in ("get_image_features", "get_text_features") if name == "model" else ():
            if not callable(getattr(m, attr, None)):
                raise ConfigError(f"{BACKEND}: {model_name!r} has no {attr}() (is it an LLM2CLIP model?)")
    tokenizer.padding_side = "left"  # LLM2Vec pools the last positions
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(dev).eval()
    text_model.to(dev).eval()
    local = [p for p in (model_name, opts["text_model"]) if os.path.isdir(p)]
    encoder = LLM2ClipEncoder(
        model_name=model_name,
        options=opts,
        device=dev,
        precision=precision,
        model=model,
        text_model=text_model,
        tokenizer=tokenizer,
        processor=image_processor(opts["image_size"]),
        num_workers=num_workers,
        # Hub weights are pinned by their revisions; a local folder only by its bytes.
        weights_sha256=hashlib.sha256("|".join(folder_sha256(p) for p in local).encode()).hexdigest()
        if local
        else None,
        pretrained=opts["revision"],
    )
    encoder.embed_dim = _probe_dim(encoder, opts["embed_dim"])
    return encoder


def _probe_dim(encoder: LLM2ClipEncoder, expected: int | None) -> int:
    """Both towers' output width from a one-caption, one-image probe; must match ``embed_dim`` if set."""
    from PIL import Image

    size = encoder.options["image_size"]
    with torch.inference_mode():
        pixels = encoder.processor(images=[Image.new("RGB", (size, size))], return_tensors="pt")["pixel_values"]
        image_dim = int(encoder.model.get_image_features(pixels.to(encoder.device, dtype=encoder._dtype)).shape[-1])
        text_dim = int(encoder.model.get_text_features(encoder._llm2vec(["probe"]).to(encoder._dtype)).shape[-1])
    if image_dim != text_dim:
        raise InvalidEmbeddingsError(
            f"{encoder.model_name}: image features have dimension {image_dim} but text features {text_dim}"
        )
    if expected is not None and image_dim != expected:
        raise ConfigError(
            f"{BACKEND} options.embed_dim: {encoder.model_name!r} produces {image_dim}-d features, "
            f"the config expects {expected}"
        )
    return image_dim
