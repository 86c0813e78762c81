"""What the encoder and embedding stages check in a config: each encoder's weights, training and backend."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modgap.embed.backends import DEFAULT_BACKEND, backend_names
from modgap.errors import ConfigError

# The one project-built open_clip model (modgap.embed.models.MODEL_NAME; not imported: torch is slow).
LIT_MODEL = "modgap-lit-effnet-minilm"
LLM2CLIP = "llm2clip"  # modgap.embed.hf_remote.BACKEND


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
        _check_backend_keys(name, enc)
        pretrained = enc.get("pretrained")
        if enc.get("backend", DEFAULT_BACKEND) == LLM2CLIP:
            continue  # `pretrained` is the model's Hub commit, not a file
        if pretrained and _looks_like_path(pretrained) and not (base / pretrained).is_file():
            raise ConfigError(f"encoders.{name}.pretrained: checkpoint file {pretrained!r} does not exist")


def _check_backend_keys(name: str, enc: Mapping[str, Any]) -> None:
    """The `hf` block belongs to the llm2clip backend, which needs it; its keys are checked here by name."""
    backend = enc.get("backend", DEFAULT_BACKEND)
    if backend != LLM2CLIP:
        if "hf" in enc:
            raise ConfigError(
                f"encoders.{name}.hf: only backend '{LLM2CLIP}' takes an 'hf' section (backend is {backend!r})"
            )
        return
    if enc.get("train") is not None:
        raise ConfigError(f"encoders.{name}.train: backend '{LLM2CLIP}' models are not trained by the encoder rule")
    if "hf" not in enc:
        raise ConfigError(f"encoders.{name}.hf: backend '{LLM2CLIP}' needs an 'hf' section (text_model, text_revision)")
    from modgap.embed.hf_options import check_options  # no torch: this runs at config time

    pinned = {**enc["hf"], "revision": enc["hf"].get("revision") or enc.get("pretrained")}
    check_options(pinned, f"encoders.{name}.hf", enc["model"])
    revision = enc["hf"].get("revision")
    if revision is not None and enc.get("pretrained") not in (None, revision):
        raise ConfigError(f"encoders.{name}.hf.revision: {revision!r} disagrees with pretrained {enc['pretrained']!r}")


def backend_options_arg(spec: Mapping[str, Any]) -> str:
    """`` --backend-options <quoted JSON>`` for an encoder with an ``hf`` section, else ``""`` (the
    extraction rule's command line; open_clip encoders keep the command they always had)."""
    import json
    import shlex

    return f" --backend-options {shlex.quote(json.dumps(spec['hf'], sort_keys=True))}" if spec.get("hf") else ""


def eval_backend_args(spec: Mapping[str, Any]) -> str:
    """`` --encoder-backend NAME --encoder-backend-options <quoted JSON>`` for an encoder with an ``hf``
    section, else ``""``: the eval_suite / eval_lmms rules load the encoder the extraction rule used,
    and open_clip encoders keep the commands they always had (byte-identical default DAG)."""
    import json
    import shlex

    if not spec.get("hf"):
        return ""
    backend = shlex.quote(spec.get("backend", DEFAULT_BACKEND))
    options = shlex.quote(json.dumps(spec["hf"], sort_keys=True))
    return f" --encoder-backend {backend} --encoder-backend-options {options}"


def _looks_like_path(value: str) -> bool:
    """open_clip tags are bare words ('openai'); a checkpoint is named by a path."""
    named = "/" in value or value.endswith((".pt", ".pth", ".bin", ".safetensors"))
    return named and not value.startswith("hf-hub:")
