"""Settings of the ``llm2clip`` encoder backend (config ``encoders.<name>.hf``), checked without torch.

Kept apart from :mod:`modgap.embed.hf_remote` so that config validation (Snakemake start-up, the CLI)
never imports torch or transformers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from modgap.errors import ConfigError

BACKEND = "llm2clip"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
# OpenAI CLIP ViT-L/14-336 preprocessing (openai/clip-vit-large-patch14-336 preprocessor_config.json).
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
# What LLM2Vec.prepare_for_tokenization adds for "meta-llama/Meta-Llama-3-8B-Instruct" (the name the
# authors force onto the LLM2CLIP Llama-3 config so that this wrapping happens).
LLAMA3_PREFIX = "<|start_header_id|>user<|end_header_id|>\n\n"
LLAMA3_SUFFIX = "<|eot_id|>"

# option key -> default; every key is checked by check_options (config: encoders.<name>.hf.<key>)
OPTION_DEFAULTS: dict[str, Any] = {
    "revision": None,  # 40-hex commit of `model` on the Hub; null only for a local folder
    "text_model": None,  # the LLM2Vec side: Hub id or local folder (required)
    "text_revision": None,
    "text_max_length": 512,
    "text_prefix": LLAMA3_PREFIX,
    "text_suffix": LLAMA3_SUFFIX,
    "image_size": 336,
    "embed_dim": None,  # expected output dimension (1280 for LLM2CLIP-Openai-L-14-336); checked on load
    "local_files_only": False,  # true: never contact the Hub (HF offline mode does the same)
}


def check_options(options: Mapping[str, Any], where: str, model: str | None = None) -> dict[str, Any]:
    """Fill defaults and validate; errors name ``{where}.{key}``."""
    unknown = sorted(set(options) - set(OPTION_DEFAULTS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(OPTION_DEFAULTS)}")
    opts = {**OPTION_DEFAULTS, **options}
    if not opts["text_model"] or not isinstance(opts["text_model"], str):
        raise ConfigError(f"{where}.text_model: the LLM2Vec text model (Hub id or folder) is required")
    for repo_key, rev_key in (("model", "revision"), ("text_model", "text_revision")):
        repo = model if repo_key == "model" else opts["text_model"]
        rev = opts[rev_key]
        if rev is not None and not (isinstance(rev, str) and _COMMIT.match(rev)):
            raise ConfigError(f"{where}.{rev_key}: {rev!r} is not a 40-hex commit (pin revisions, not branches)")
        if repo and rev is None and not _is_local(repo):
            also = " (or the encoder's `pretrained`)" if rev_key == "revision" else ""
            raise ConfigError(f"{where}.{rev_key}: Hub model {repo!r} needs a pinned commit{also}")
    for key, low in (("text_max_length", 8), ("image_size", 32)):
        if not isinstance(opts[key], int) or isinstance(opts[key], bool) or opts[key] < low:
            raise ConfigError(f"{where}.{key}: expected an integer >= {low}, got {opts[key]!r}")
    dim = opts["embed_dim"]
    if dim is not None and (not isinstance(dim, int) or isinstance(dim, bool) or dim < 2):
        raise ConfigError(f"{where}.embed_dim: expected an integer >= 2, got {dim!r}")
    for key in ("text_prefix", "text_suffix"):
        if not isinstance(opts[key], str):
            raise ConfigError(f"{where}.{key}: expected a string, got {type(opts[key]).__name__}")
    if not isinstance(opts["local_files_only"], bool):
        raise ConfigError(f"{where}.local_files_only: expected true or false")
    return opts


def _is_local(repo: str) -> bool:
    return os.path.isdir(repo) or repo.startswith((".", "/", "~"))
