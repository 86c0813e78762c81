"""What the encoder and embedding stages check in a config: each encoder's weights, training and backend."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modgap.embed.backends import DEFAULT_BACKEND, backend_names
from modgap.errors import ConfigError

# The one project-built open_clip model (modgap.embed.models.MODEL_NAME; not imported: torch is slow).
LIT_MODEL = "modgap-lit-effnet-minilm"


def check_config(config: Mapping[str, Any], base: Path) -> None:
    for name, enc in config["encoders"].items():
        train = enc.get("train")
        if train is None and not enc.get("pretrained"):
            raise ConfigError(f"encoders.{name}: needs either 'pretrained' or a 'train' section")
        if train is not None and enc.get("pretrained"):
            raise ConfigError(f"encoders.{name}: 'pretrained' and 'train' are mutually exclusive")
        if train is not None and enc["model"] != LIT_MODEL:
            raise ConfigError(f"encoders.{name}.model: only '{LIT_MODEL}' can be trained by the encoder rule")
        if train is not None and train["dataset"] not in config["datasets"]:
            raise ConfigError(f"encoders.{name}.train.dataset: unknown dataset '{train['dataset']}'")
        if enc.get("backend", DEFAULT_BACKEND) not in backend_names():
            raise ConfigError(
                f"encoders.{name}.backend: {enc['backend']!r} is not a registered encoder backend "
                f"({', '.join(backend_names())})"
            )
        pretrained = enc.get("pretrained")
        if pretrained and _looks_like_path(pretrained) and not (base / pretrained).is_file():
            raise ConfigError(f"encoders.{name}.pretrained: checkpoint file {pretrained!r} does not exist")


def _looks_like_path(value: str) -> bool:
    """open_clip tags are bare words ('openai'); a checkpoint is named by a path."""
    named = "/" in value or value.endswith((".pt", ".pth", ".bin", ".safetensors"))
    return named and not value.startswith("hf-hub:")
