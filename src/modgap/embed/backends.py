"""Encoder backends: one interface every embedding model is used through, and a registry of factories.

The extraction stage, the adversarial-negative similarity of the eval suite and the lmms-eval plugin
need only what :class:`EncoderBackend` promises: L2-normalised float32 rows for images and texts, the
embedding dimension, and an ``identity()`` that pins what determines the embeddings (cache keys and
``meta.json``). ``open_clip`` (:class:`~modgap.embed.encoder.OpenClipEncoder`) is the default;
``llm2clip`` (:class:`~modgap.embed.hf_remote.LLM2ClipEncoder`) loads an HF ``trust_remote_code``
model pair at pinned revisions. A backend is a factory registered with :func:`register_backend`,
checked by the shared contract test (``tests/test_encoder_backends.py``). Backend-specific settings
(config ``encoders.<name>.hf``) reach the factory as keyword ``options``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from modgap.errors import ConfigError

DEFAULT_BACKEND = "open_clip"


@runtime_checkable
class EncoderBackend(Protocol):
    """A loaded encoder: what every consumer of embeddings relies on."""

    embed_dim: int

    def identity(self) -> dict[str, Any]:
        """Everything besides the inputs that determines the embeddings (JSON-serialisable)."""
        ...

    def preprocessing(self) -> dict[str, Any]:
        """How images are turned into tensors (size, crop, normalisation), for provenance."""
        ...

    def encode_images(self, items: Sequence[Any], batch_size: int = ..., progress: Any = ...) -> np.ndarray:
        """(n, embed_dim) float32 rows of unit L2 norm, in input order."""
        ...

    def encode_texts(self, captions: Sequence[str], batch_size: int = ..., progress: Any = ...) -> np.ndarray:
        """(n, embed_dim) float32 rows of unit L2 norm, in input order."""
        ...


# name -> factory(model_name, pretrained, device, precision, num_workers, **options) -> EncoderBackend
BackendFactory = Callable[..., EncoderBackend]
_BACKENDS: dict[str, BackendFactory] = {}


def register_backend(name: str) -> Callable[[BackendFactory], BackendFactory]:
    def add(factory: BackendFactory) -> BackendFactory:
        if name in _BACKENDS:
            raise ConfigError(f"encoder backend {name!r} is already registered")
        _BACKENDS[name] = factory
        return factory

    return add


def unregister_backend(name: str) -> None:
    _BACKENDS.pop(name, None)


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def create_encoder(
    backend: str = DEFAULT_BACKEND,
    model_name: str = "",
    pretrained: str | None = None,
    device: str = "auto",
    precision: str = "fp32",
    num_workers: int = 0,
    options: dict[str, Any] | None = None,
) -> EncoderBackend:
    """Load ``model_name`` through the named backend (open_clip-style ``create_*`` factory)."""
    try:
        factory = _BACKENDS[backend]
    except KeyError:
        raise ConfigError(f"unknown encoder backend {backend!r}; known: {backend_names()}") from None
    # Options only when given, so factories without backend-specific settings keep a 5-argument signature.
    return factory(model_name, pretrained, device, precision, num_workers, **(options or {}))


def parse_backend_options(text: str | None, flag: str = "--backend-options") -> dict[str, Any] | None:
    """A command line's backend options (a JSON object, or nothing); errors name ``flag``."""
    import json

    if not text:
        return None
    try:
        options = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{flag}: not JSON ({exc})") from exc
    if not isinstance(options, dict):
        raise ConfigError(f"{flag}: expected a JSON object")
    return options


@register_backend("open_clip")
def _open_clip(model_name: str, pretrained: str | None, device: str, precision: str, num_workers: int) -> Any:
    from modgap.embed.encoder import load_encoder  # torch and open_clip only when a model is built

    return load_encoder(model_name, pretrained, device, precision, num_workers)


@register_backend("llm2clip")
def _llm2clip(
    model_name: str, pretrained: str | None, device: str, precision: str, num_workers: int, **options: Any
) -> Any:
    from modgap.embed.hf_remote import load_llm2clip  # transformers only when a model is built

    return load_llm2clip(model_name, pretrained, device, precision, num_workers, **options)
