"""A tiny random-init open_clip model for tests and CPU benchmarks (no download, ~1.6 M params).

``register_tiny_model()`` adds the config to open_clip's registry through its public
``add_model_config``; ``save_tiny_checkpoint`` writes a seeded state dict that loads with
``create_model_and_transforms(TINY_MODEL, pretrained=path)`` like any real checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

TINY_MODEL = "modgap-tiny-vit"
TINY_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def register_tiny_model() -> str:
    """Register the tiny config with open_clip (idempotent) and return its name."""
    import open_clip

    if TINY_MODEL not in open_clip.list_models():
        config_dir = Path(tempfile.mkdtemp(prefix="modgap-tiny-"))
        (config_dir / f"{TINY_MODEL}.json").write_text(json.dumps(TINY_CONFIG))
        open_clip.add_model_config(config_dir)
    return TINY_MODEL


def save_tiny_checkpoint(path: str | os.PathLike[str], seed: int = 0) -> Path:
    """Write a seeded random-init state dict of the tiny model to ``path``."""
    import open_clip
    import torch

    register_tiny_model()
    with torch.random.fork_rng(devices=[]):  # seed locally, leave the caller's RNG alone
        torch.manual_seed(seed)
        model = open_clip.create_model(TINY_MODEL, pretrained=None)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path
