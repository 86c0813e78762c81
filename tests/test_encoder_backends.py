"""The encoder-backend contract, run over every registered backend.

Each backend needs a builder here that makes a small model offline; a backend registered without one
fails ``test_every_backend_has_a_test_model``, so no backend escapes the contract.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from _extract_fixtures import build_manifest
from modgap.embed.backends import (
    EncoderBackend,
    backend_names,
    create_encoder,
    register_backend,
    unregister_backend,
)
from modgap.embed.encoder import ImageItem
from modgap.errors import ConfigError


def _open_clip_model(tmp_path):
    from modgap.embed.tiny import register_tiny_model, save_tiny_checkpoint

    return register_tiny_model(), str(save_tiny_checkpoint(tmp_path / "tiny.pt", seed=0)), None


def _llm2clip_model(tmp_path):
    from _llm2clip_fixture import make_tiny_llm2clip

    built = make_tiny_llm2clip(tmp_path / "llm2clip")
    return built["model"], None, built["options"]


# backend -> builder(tmp_path) -> (model_name, pretrained, options)
TEST_MODELS = {"open_clip": _open_clip_model, "llm2clip": _llm2clip_model}


def test_every_backend_has_a_test_model():
    assert set(backend_names()) <= set(TEST_MODELS)


@pytest.mark.parametrize("backend", backend_names())
def test_backend_contract(backend, tmp_path):
    model_name, pretrained, options = TEST_MODELS[backend](tmp_path)
    encoder = create_encoder(backend, model_name, pretrained, device="cpu", options=options)
    assert isinstance(encoder, EncoderBackend)
    frame = build_manifest(tmp_path / "data")
    images = [ImageItem(tmp_path / "data" / p) for p in frame["image_path"][:5]]
    captions = list(frame["caption"][:5])
    for rows in (
        encoder.encode_images(images, batch_size=2, progress=False),
        encoder.encode_texts(captions, batch_size=2, progress=False),
    ):
        assert rows.dtype == np.float32 and rows.shape == (5, encoder.embed_dim)
        np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)
    # the same inputs give the same rows, whatever the batching; identity is JSON and names the weights
    again = encoder.encode_texts(captions[::-1], batch_size=5, progress=False)[::-1]
    np.testing.assert_allclose(again, encoder.encode_texts(captions, batch_size=2, progress=False), atol=1e-6)
    identity = json.loads(json.dumps(encoder.identity()))
    assert identity and json.dumps(encoder.preprocessing())


def test_an_unknown_backend_is_named_and_a_name_registers_once():
    with pytest.raises(ConfigError, match=r"unknown encoder backend 'nope'; known: \['llm2clip', 'open_clip'"):
        create_encoder("nope", "x")
    with pytest.raises(ConfigError, match="already registered"):
        register_backend("open_clip")(lambda *a: None)


def test_a_registered_backend_is_what_create_encoder_builds():
    made = []

    @register_backend("fake")
    def fake(model_name, pretrained, device, precision, num_workers):
        made.append((model_name, pretrained, device, precision, num_workers))
        return "encoder"

    try:
        assert create_encoder("fake", "m", "w", "cpu", "bf16", 2) == "encoder"
        assert made == [("m", "w", "cpu", "bf16", 2)]
        assert "fake" in backend_names()
        with pytest.raises(AssertionError):  # registered without a test model: the contract test says so
            test_every_backend_has_a_test_model()
    finally:
        unregister_backend("fake")


def test_the_config_names_a_backend_that_is_not_registered():
    from modgap.config import load_config, merge_overlay, validate_config

    config = load_config("config/config.yaml")
    validate_config(merge_overlay(config, {"encoders": {"lit-effnet-minilm": {"backend": "open_clip"}}}))
    bad = merge_overlay(config, {"encoders": {"lit-effnet-minilm": {"backend": "hf_remote"}}})  # not registered
    with pytest.raises(ConfigError, match=r"encoders\.lit-effnet-minilm\.backend: 'hf_remote' is not a registered"):
        validate_config(bad)
