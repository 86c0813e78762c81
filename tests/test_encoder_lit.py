"""LiT head training, the open_clip checkpoint round trip and the encoder-train command."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from PIL import Image  # noqa: E402

from encoder_fakes import make_shapes_manifest  # noqa: E402
from modgap.embed import lit, models  # noqa: E402
from modgap.embed.encoder_commands import parse_params, register_encoder  # noqa: E402
from modgap.errors import ConfigError, ModgapError  # noqa: E402


class _StubHeads(torch.nn.Module):
    """Just the trainable parts of the open_clip model, for fast checks of train_heads."""

    def __init__(self, d_img: int = 12, d_txt: int = 10, dim: int = 6) -> None:
        super().__init__()
        self.visual = torch.nn.Module()
        self.visual.head = torch.nn.Sequential()
        self.visual.head.add_module("proj", torch.nn.Linear(d_img, dim, bias=False))
        self.text = torch.nn.Module()
        self.text.proj = torch.nn.Linear(d_txt, dim, bias=False)
        self.logit_scale = torch.nn.Parameter(torch.tensor(0.0))


def _paired_features(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 4))
    img = latent @ rng.normal(size=(4, 12)) + 0.1 * rng.normal(size=(n, 12))
    txt = latent @ rng.normal(size=(4, 10)) + 0.1 * rng.normal(size=(n, 10))
    return img.astype(np.float32), txt.astype(np.float32)


def test_train_heads_lowers_loss_and_is_deterministic() -> None:
    img, txt = _paired_features()
    params = {"epochs": 15, "batch_size": 16, "lr": 1e-2}
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        stub = _StubHeads()
        history = lit.train_heads(stub, img, txt, params)
        results.append((history, stub.visual.head.proj.weight.clone(), stub.text.proj.weight.clone()))
    (first, v1, t1), (second, v2, t2) = results
    assert first["loss_final"] < 0.5 * first["loss_initial"]
    assert len(first["loss_per_epoch"]) == 15 and first["steps"] == 15 * 3
    assert first == second and torch.equal(v1, v2) and torch.equal(t1, t2)
    assert all(not p.requires_grad for p in stub.parameters())  # towers and heads left frozen


def test_resolve_params_rejects_bad_values() -> None:
    assert lit.resolve_params({"epochs": 3.0})["epochs"] == 3
    with pytest.raises(ConfigError, match="unknown key 'epoch'"):
        lit.resolve_params({"epoch": 3})
    with pytest.raises(ConfigError, match="lr must be positive"):
        lit.resolve_params({"lr": 0})
    with pytest.raises(ConfigError, match="image_size must be"):
        lit.resolve_params({"image_size": 128})
    with pytest.raises(ConfigError, match="batch_size must be int"):
        lit.resolve_params({"batch_size": "8"})


def test_parse_params_json() -> None:
    assert parse_params('{"epochs": 2}')["epochs"] == 2
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_params("{epochs: 2}")
    with pytest.raises(ConfigError, match="JSON object"):
        parse_params("[2]")


def test_load_split_reports_missing_images(tmp_path: Path) -> None:
    manifest = make_shapes_manifest(tmp_path, n_train=4, n_diag=2, size=32)
    (tmp_path / "images" / "train_00002.jpg").unlink()
    with pytest.raises(ModgapError, match="1 image"):
        lit.load_split(manifest, "train", tmp_path)
    with pytest.raises(ModgapError, match="split 'test' has 0"):
        lit.load_split(manifest, "test", tmp_path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A few LiT steps with the real towers on 12 tiny shape images, saved as an open_clip checkpoint."""
    root = tmp_path_factory.mktemp("lit")
    manifest = make_shapes_manifest(root, n_train=12, n_diag=6, size=48)
    rows = lit.load_split(manifest, "train", root)
    torch.manual_seed(0)
    model, preprocess, tokenizer = models.create_untrained_model()
    image, text = lit.tower_features(model, preprocess, tokenizer, rows, batch_size=12)
    history = lit.train_heads(model, image, text, {"epochs": 4, "batch_size": 6, "lr": 5e-3})
    checkpoint = root / "open_clip.pt"
    lit.save_open_clip_checkpoint(model, checkpoint, epochs=4)
    return SimpleNamespace(
        root=root,
        rows=rows,
        model=model,
        preprocess=preprocess,
        tokenizer=tokenizer,
        features=(image, text),
        history=history,
        checkpoint=checkpoint,
    )


def test_tiny_lit_run_lowers_loss(trained: SimpleNamespace) -> None:
    image, text = trained.features
    assert image.shape == (12, models.IMAGE_FEATURE_DIM) and text.shape == (12, models.TEXT_FEATURE_DIM)
    assert trained.history["loss_final"] < trained.history["loss_initial"]


def test_checkpoint_round_trips_through_open_clip(trained: SimpleNamespace) -> None:
    import open_clip

    models.register_project_models()
    loaded, _, preprocess = open_clip.create_model_and_transforms(models.MODEL_NAME, pretrained=str(trained.checkpoint))
    loaded.eval()
    pixels = torch.stack([trained.preprocess(Image.open(p).convert("RGB")) for p in trained.rows["image_path"][:3]])
    tokens = trained.tokenizer(list(trained.rows["caption"][:3]))
    with torch.no_grad():
        for module in (trained.model, loaded):
            module.eval()
        torch.testing.assert_close(loaded.encode_image(pixels), trained.model.encode_image(pixels))
        torch.testing.assert_close(loaded.encode_text(tokens), trained.model.encode_text(tokens))
        torch.testing.assert_close(loaded.logit_scale, trained.model.logit_scale)
    assert preprocess.transforms[1].size == (models.IMAGE_SIZE, models.IMAGE_SIZE)


@pytest.mark.slow
def test_encoder_train_command(tmp_path: Path) -> None:
    manifest = make_shapes_manifest(tmp_path, n_train=16, n_diag=8, size=48)
    parser = argparse.ArgumentParser()
    register_encoder(parser.add_subparsers(dest="command"))
    out_dir, metrics_out = tmp_path / "results/encoders/lit", tmp_path / "results/metrics/encoder.json"
    args = parser.parse_args(
        [
            "encoder-train",
            "--manifest",
            str(manifest),
            "--out-dir",
            str(out_dir),
            "--root",
            str(tmp_path),
            "--params",
            json.dumps({"epochs": 3, "batch_size": 8}),
            "--metrics-out",
            str(metrics_out),
        ]
    )
    assert args.func(args) == 0
    record = json.loads((out_dir / "train.json").read_text())
    assert record["n_train"] == 16 and len(record["loss_per_epoch"]) == 3 and record["params"]["epochs"] == 3
    metrics = json.loads(metrics_out.read_text())
    assert metrics["n"] == 8 and metrics["chance_R@1"] == pytest.approx(1 / 8)
    assert metrics["checkpoint_sha256"] == record["checkpoint_sha256"]
    for key in ("i2t_R@1", "i2t_R@5", "t2i_R@1", "t2i_R@5", "centroid_gap", "train_seconds"):
        assert key in metrics
