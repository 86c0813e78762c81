"""A tiny LLM2CLIP-style model pair built offline in a test folder, loaded with ``trust_remote_code``.

* ``clip/``: custom code (``configuration_tinyllm2clip.py`` / ``modeling_tinyllm2clip.py``, wired by
  ``auto_map`` in ``config.json``) with ``get_image_features(pixel_values)`` and
  ``get_text_features(pooled_llm_features)``, as LLM2CLIP-Openai-L-14-336 has;
* ``text/``: a random-init Llama (the LLM2Vec side) with the byte-level BPE tokenizer of
  :func:`modgap.mllm.testing.make_tiny_llm`.

``fail="nan"`` makes the image tower return NaN; ``text_dim`` != ``dim`` gives towers of different width.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

CONFIG_CODE = """
from transformers import PretrainedConfig


class TinyLLM2CLIPConfig(PretrainedConfig):
    model_type = "tiny_llm2clip"

    def __init__(self, image_size=32, patch=8, llm_dim=32, dim=16, text_dim=None, fail="", **kwargs):
        self.image_size = image_size
        self.patch = patch
        self.llm_dim = llm_dim
        self.dim = dim
        self.text_dim = text_dim or dim
        self.fail = fail
        super().__init__(**kwargs)
"""

MODELING_CODE = """
import torch
from torch import nn
from transformers import PreTrainedModel

from .configuration_tinyllm2clip import TinyLLM2CLIPConfig


class TinyLLM2CLIPModel(PreTrainedModel):
    config_class = TinyLLM2CLIPConfig

    def __init__(self, config):
        super().__init__(config)
        self.patch_embed = nn.Conv2d(3, 24, kernel_size=config.patch, stride=config.patch)
        self.visual_projection = nn.Linear(24, config.dim)
        self.text_adaptor = nn.Sequential(nn.Linear(config.llm_dim, 24), nn.GELU(), nn.Linear(24, config.text_dim))
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.normal_(module.weight, std=0.2)
            nn.init.normal_(module.bias, std=0.05)

    def get_image_features(self, pixel_values):
        feats = self.visual_projection(self.patch_embed(pixel_values).flatten(2).mean(-1))
        return feats * float("nan") if self.config.fail == "nan" else feats

    def get_text_features(self, inputs):
        return self.text_adaptor(inputs)
"""

PREFIX = "user: "
SUFFIX = "<|im_end|>"


def _import(folder: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"tinyllm2clip_build.{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def make_tiny_llm2clip(
    root: Path, *, seed: int = 0, dim: int = 16, text_dim: int | None = None, fail: str = ""
) -> dict:
    """Write ``root/clip`` and ``root/text``; return ``{"model", "options"}`` for the ``llm2clip`` backend."""
    import torch

    from modgap.mllm.testing import make_tiny_llm

    text = make_tiny_llm(root / "text", hidden=32, layers=2, seed=seed)
    clip = root / "clip"
    clip.mkdir(parents=True, exist_ok=True)
    (clip / "configuration_tinyllm2clip.py").write_text(CONFIG_CODE, encoding="utf-8")
    # Built from a package-less copy (relative import rewritten); the saved folder keeps the relative one
    # that transformers' dynamic-module loader resolves.
    (clip / "modeling_tinyllm2clip.py").write_text(MODELING_CODE, encoding="utf-8")
    build = root / "build"
    build.mkdir(exist_ok=True)
    (build / "configuration_tinyllm2clip.py").write_text(CONFIG_CODE, encoding="utf-8")
    (build / "modeling_tinyllm2clip.py").write_text(
        MODELING_CODE.replace("from .configuration_tinyllm2clip", "from tinyllm2clip_build.configuration_tinyllm2clip"),
        encoding="utf-8",
    )
    sys.modules.setdefault("tinyllm2clip_build", type(sys)("tinyllm2clip_build"))
    cfg_mod = _import(build, "configuration_tinyllm2clip")
    model_mod = _import(build, "modeling_tinyllm2clip")
    config = cfg_mod.TinyLLM2CLIPConfig(dim=dim, text_dim=text_dim, fail=fail)
    config.auto_map = {
        "AutoConfig": "configuration_tinyllm2clip.TinyLLM2CLIPConfig",
        "AutoModel": "modeling_tinyllm2clip.TinyLLM2CLIPModel",
    }
    config.architectures = ["TinyLLM2CLIPModel"]
    torch.manual_seed(seed)
    model_mod.TinyLLM2CLIPModel(config).save_pretrained(clip, safe_serialization=True)
    options = {
        "text_model": str(text),
        "text_prefix": PREFIX,
        "text_suffix": SUFFIX,
        "image_size": 32,
        "embed_dim": dim,
        "local_files_only": True,
    }
    return {"model": str(clip), "options": options}
