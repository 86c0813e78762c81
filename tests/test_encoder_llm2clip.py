"""The ``llm2clip`` backend on a tiny remote-code model pair built offline (tests/_llm2clip_fixture.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _extract_fixtures import build_manifest, write_manifest
from _llm2clip_fixture import PREFIX, make_tiny_llm2clip
from modgap.embed.backends import create_encoder
from modgap.embed.encoder import ImageItem
from modgap.embed.extract import EncoderSpec, extract_split
from modgap.errors import ConfigError, InvalidEmbeddingsError

CAPTIONS = ["a red circle", "a blue square on a black background", "tree", "a small old dog next to a car"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("llm2clip")
    built = make_tiny_llm2clip(root / "model")
    frame = build_manifest(root / "data")
    encoder = create_encoder("llm2clip", built["model"], None, "cpu", "fp32", 0, built["options"])
    return {"root": root, "built": built, "frame": frame, "encoder": encoder}


def test_loads_remote_code_and_returns_unit_rows(tiny):
    enc, frame, root = tiny["encoder"], tiny["frame"], tiny["root"]
    # the CLIP side is the folder's own code, imported by transformers' dynamic-module loader
    assert type(enc.model).__name__ == "TinyLLM2CLIPModel"
    assert type(enc.model).__module__.startswith("transformers_modules")
    images = [ImageItem(root / "data" / p) for p in frame["image_path"][:6]]
    for rows in (enc.encode_images(images, 4, progress=False), enc.encode_texts(CAPTIONS, 3, progress=False)):
        assert rows.dtype == np.float32 and rows.shape[1] == enc.embed_dim == 16
        np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-6)
    assert enc.preprocessing()["crop_size"] == [32, 32] and enc.options["text_max_length"] == 512


def test_text_side_is_llm2vec_mean_pooling_over_the_caption_tokens(tiny):
    """Recompute one caption by hand: mean of the Llama's last hidden states over caption + suffix tokens."""
    import torch

    enc = tiny["encoder"]
    caption = CAPTIONS[1]
    part = caption + enc.options["text_suffix"]
    n = len(enc.tokenizer(part, add_special_tokens=False)["input_ids"])
    ids = enc.tokenizer(PREFIX + part, return_tensors="pt")
    with torch.inference_mode():
        hidden = enc.text_model(**ids).last_hidden_state[0]
        expected = enc.model.get_text_features(hidden[-n:].mean(0, keepdim=True))
    expected = torch.nn.functional.normalize(expected, dim=-1).numpy()
    np.testing.assert_allclose(enc.encode_texts([caption], progress=False), expected, atol=1e-6)
    # the prefix is context, not pooled: a different prefix changes the embedding
    other = create_encoder(
        "llm2clip", tiny["built"]["model"], None, "cpu", options={**tiny["built"]["options"], "text_prefix": "q: "}
    )
    assert not np.allclose(other.encode_texts([caption], progress=False), expected, atol=1e-4)


def test_deterministic_across_loads_and_batching(tiny):
    enc, built = tiny["encoder"], tiny["built"]
    again = create_encoder("llm2clip", built["model"], None, "cpu", options=built["options"])
    first = enc.encode_texts(CAPTIONS, 4, progress=False)
    np.testing.assert_array_equal(first, again.encode_texts(CAPTIONS, 4, progress=False))
    np.testing.assert_allclose(first, enc.encode_texts(CAPTIONS, 1, progress=False), atol=1e-6)
    assert again.identity() == enc.identity() and enc.weights_sha256


def test_extraction_store_provenance_and_resume(tiny):
    root, built = tiny["root"], tiny["built"]
    manifest = write_manifest(tiny["frame"], root / "data" / "manifest.parquet")
    spec = EncoderSpec(built["model"], None, "cpu", "fp32", 0, "llm2clip", built["options"])
    out = root / "emb" / "diag"
    meta = extract_split(manifest, "diag", spec, out, batch_size=2, shard_rows=2, root=root / "data", progress=False)
    assert meta["embed_dim"] == 16 and meta["counts"] == {"image": 3, "text": 3}
    assert meta["model"]["weights_sha256"] == tiny["encoder"].weights_sha256
    assert json.loads((out / "meta.json").read_text())["preprocessing"]["text_pooling"].startswith("mean")
    image = np.load(out / "image.npy")
    # a rerun reuses the store and writes the same bytes
    again = extract_split(
        manifest, "diag", tiny["encoder"], out, batch_size=2, shard_rows=2, root=root / "data", progress=False
    )
    assert again["files"] == meta["files"]
    np.testing.assert_array_equal(np.load(out / "image.npy"), image)


def test_nan_output_and_wrong_dimension_are_named(tmp_path):
    nan = make_tiny_llm2clip(tmp_path / "nan", fail="nan")
    enc_model, opts = nan["model"], nan["options"]
    with pytest.raises(InvalidEmbeddingsError, match=r"image row 0 is NaN/Inf or zero"):
        create_encoder("llm2clip", enc_model, None, "cpu", options={**opts, "embed_dim": None}).encode_images(
            [ImageItem(_png(tmp_path))], progress=False
        )
    with pytest.raises(ConfigError, match=r"options\.embed_dim: .* produces 16-d features, the config expects 1280"):
        create_encoder("llm2clip", enc_model, None, "cpu", options={**opts, "embed_dim": 1280})
    wide = make_tiny_llm2clip(tmp_path / "wide", text_dim=12)
    with pytest.raises(InvalidEmbeddingsError, match="image features have dimension 16 but text features 12"):
        create_encoder("llm2clip", wide["model"], None, "cpu", options=wide["options"])


def _png(tmp_path):
    from PIL import Image

    path = tmp_path / "x.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(path)
    return path


LLM2CLIP_ENCODER = {
    "backend": "llm2clip",
    "model": "microsoft/LLM2CLIP-Openai-L-14-336",
    "pretrained": "d683b1ef3168dbeb4da6c00136cbe9a5de531a29",
    "hf": {
        "text_model": "microsoft/LLM2CLIP-Llama-3-8B-Instruct-CC-Finetuned",
        "text_revision": "33d5ca9d51c695fa9dcb7e35889e2ee6051cc20a",
        "embed_dim": 1280,
    },
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hf": None}, r"encoders\.llm\.hf: backend 'llm2clip' needs an 'hf' section"),
        ({"hf": {"text_revision": "main"}}, r"encoders\.llm\.hf\.text_revision"),
        ({"hf": {"text_revision": None}}, r"encoders\.llm\.hf\.text_revision: Hub model .* needs a pinned commit"),
        ({"hf": {"text_max_lenght": 512}}, r"text_max_lenght"),
        ({"pretrained": None}, r"encoders\.llm"),
    ],
)
def test_config_keys_are_checked_by_name(change, message):
    from modgap.config import load_config, merge_overlay, validate_config

    base = load_config("config/config.yaml")
    good = merge_overlay(base, {"encoders": {"llm": LLM2CLIP_ENCODER}})
    validate_config(good)
    enc = json.loads(json.dumps(LLM2CLIP_ENCODER))
    for key, value in change.items():
        if value is None and key == "hf":
            enc.pop("hf")
        elif isinstance(value, dict):
            enc[key] = {**enc[key], **value}
            enc[key] = {k: v for k, v in enc[key].items() if v is not None}
        else:
            enc.pop(key)
    config = json.loads(json.dumps(good))
    config["encoders"]["llm"] = enc
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_open_clip_encoders_take_no_hf_section():
    from modgap.config import load_config, merge_overlay, validate_config

    bad = merge_overlay(
        load_config("config/config.yaml"), {"encoders": {"lit-effnet-minilm": {"hf": {"text_model": "x"}}}}
    )
    with pytest.raises(ConfigError, match=r"encoders\.lit-effnet-minilm\.hf: only backend 'llm2clip'"):
        validate_config(bad)


def test_the_cli_passes_backend_options_as_json(tiny):
    from modgap.cli import main

    root, built = tiny["root"], tiny["built"]
    manifest = write_manifest(tiny["frame"], root / "data" / "manifest-cli.parquet")
    out = root / "emb-cli" / "train"
    argv = ["embed", "extract", "--manifest", str(manifest), "--split", "train", "--backend", "llm2clip"]
    argv += ["--model", built["model"], "--out-dir", str(out), "--device", "cpu", "--root", str(root / "data")]
    assert main([*argv, "--backend-options", json.dumps(built["options"]), "--no-progress"]) == 0
    assert json.loads((out / "meta.json").read_text())["embed_dim"] == 16
    assert main([*argv, "--backend-options", "[1]", "--no-progress"]) != 0
