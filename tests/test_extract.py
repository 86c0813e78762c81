"""Embedding extraction: contract layout, roles, determinism, resumption and provenance."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from _extract_fixtures import TinyEnv, build_tiny_env, single_torch_thread, write_manifest
from modgap.embed.extract import META, SHARD_DIR, extract_split, is_complete
from modgap.io import sha256_file


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyEnv]:
    with single_torch_thread():
        yield build_tiny_env(tmp_path_factory.mktemp("embedded"))


OUTPUTS = ("image.npy", "text.npy", "image_ids.txt", "text_ids.txt")


def _ids(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _run(env: TinyEnv, split: str, out: Path, **kwargs: object) -> dict:
    kwargs.setdefault("batch_size", 2)
    kwargs.setdefault("shard_rows", 2)
    return extract_split(env.manifest, split, env.encoder, out, root=env.root, progress=False, **kwargs)


def test_paired_split_layout(env: TinyEnv, tmp_path: Path) -> None:
    meta = _run(env, "diag", tmp_path)
    image, text = np.load(tmp_path / "image.npy"), np.load(tmp_path / "text.npy")
    assert image.shape == text.shape == (3, 16)
    assert image.dtype == text.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(image, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
    ids = _ids(tmp_path / "image_ids.txt")
    assert ids == _ids(tmp_path / "text_ids.txt") == sorted(ids) == ["item07", "item08", "item09"]
    assert meta["counts"] == {"image": 3, "text": 3} and meta["paired"] is True
    assert is_complete(tmp_path) and not (tmp_path / SHARD_DIR).exists()


def test_rows_align_with_ids(env: TinyEnv, tmp_path: Path) -> None:
    _run(env, "diag", tmp_path)
    frame = env.frame.set_index("id")
    ids = _ids(tmp_path / "image_ids.txt")
    direct_img = env.encoder.encode_images(
        [env.root / frame.loc[i, "image_path"] for i in ids], batch_size=1, progress=False
    )
    direct_txt = env.encoder.encode_texts([frame.loc[i, "caption"] for i in ids], 1, progress=False)
    np.testing.assert_allclose(np.load(tmp_path / "image.npy"), direct_img, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "text.npy"), direct_txt, atol=1e-5)


def test_stats_split_separates_roles(env: TinyEnv, tmp_path: Path) -> None:
    meta = _run(env, "stats", tmp_path)
    frame = env.frame[env.frame["split"] == "stats"]
    expect_img = sorted(frame.loc[frame["stats_role"] == "image", "id"])
    expect_txt = sorted(frame.loc[frame["stats_role"] == "text", "id"])
    assert _ids(tmp_path / "image_ids.txt") == expect_img
    assert _ids(tmp_path / "text_ids.txt") == expect_txt
    assert not set(expect_img) & set(expect_txt)
    assert np.load(tmp_path / "image.npy").shape == (4, 16)
    assert np.load(tmp_path / "text.npy").shape == (3, 16)
    assert meta["counts"] == {"image": 4, "text": 3} and meta["paired"] is False


def test_deterministic_bytes(env: TinyEnv, tmp_path: Path) -> None:
    _run(env, "stats", tmp_path / "a")
    _run(env, "stats", tmp_path / "b", batch_size=3, shard_rows=5)
    _run(env, "stats", tmp_path / "c", batch_size=3, shard_rows=5)
    for name in (*OUTPUTS, META):
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "c" / name).read_bytes(), name
    # A different batch layout may differ in the last ulp, never in substance.
    np.testing.assert_allclose(np.load(tmp_path / "a/image.npy"), np.load(tmp_path / "b/image.npy"), atol=1e-5)


def test_resume_after_kill(env: TinyEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = tmp_path / "reference"
    _run(env, "stats", reference, shard_rows=1)  # 4 image shards + 3 text shards

    encoder = env.encoder
    original = encoder.encode_images
    calls: list[int] = []

    def dying(paths, batch_size, progress=True):  # type: ignore[no-untyped-def]
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated kill")
        calls.append(len(paths))
        return original(paths, batch_size, progress)

    out = tmp_path / "resumed"
    monkeypatch.setattr(encoder, "encode_images", dying)
    with pytest.raises(KeyboardInterrupt):
        _run(env, "stats", out, shard_rows=1)
    assert not (out / META).exists() and not (out / "image.npy").exists()
    assert len(list((out / SHARD_DIR).glob("image-*.json"))) == 2

    def counting(paths, batch_size, progress=True):  # type: ignore[no-untyped-def]
        calls.append(len(paths))
        return original(paths, batch_size, progress)

    calls.clear()
    monkeypatch.setattr(encoder, "encode_images", counting)
    _run(env, "stats", out, shard_rows=1)
    assert len(calls) == 2  # only the two unfinished image shards were recomputed
    for name in (*OUTPUTS, META):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


def test_stale_shards_are_not_reused(env: TinyEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    encoder = env.encoder
    original = encoder.encode_texts

    def dying(captions, batch_size, progress=True):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(encoder, "encode_texts", dying)
    with pytest.raises(KeyboardInterrupt):
        _run(env, "diag", out, shard_rows=1)  # all 3 image shards finish, then it dies
    assert len(list((out / SHARD_DIR).glob("image-*.json"))) == 3

    # Change one caption: the input fingerprint changes, so no shard may be reused.
    frame = env.frame.copy()
    frame.loc[frame["id"] == "item07", "caption"] = "an edited caption"
    manifest = write_manifest(frame, tmp_path / "edited.parquet")
    calls: list[int] = []
    image_original = encoder.encode_images

    def counting(paths, batch_size, progress=True):  # type: ignore[no-untyped-def]
        calls.append(len(paths))
        return image_original(paths, batch_size, progress)

    monkeypatch.setattr(encoder, "encode_texts", original)
    monkeypatch.setattr(encoder, "encode_images", counting)
    meta = extract_split(manifest, "diag", encoder, out, 2, 1, root=env.root, progress=False)
    assert len(calls) == 3
    assert meta["inputs"]["manifest_sha256"] == sha256_file(manifest)


def test_meta_records_provenance(env: TinyEnv, tmp_path: Path) -> None:
    meta = _run(env, "train", tmp_path)
    assert json.loads((tmp_path / META).read_text()) == meta
    assert meta["model"]["name"] == env.model
    assert meta["model"]["pretrained"] == str(env.checkpoint)
    assert meta["model"]["checkpoint_sha256"] == sha256_file(env.checkpoint)
    assert meta["model"]["weights_sha256"] is None  # the checkpoint hash already pins the weights
    assert meta["inputs"]["manifest_sha256"] == sha256_file(env.manifest)
    assert len(meta["inputs"]["input_sha256"]) == 64
    assert meta["files"]["image.npy"] == sha256_file(tmp_path / "image.npy")
    pre = meta["preprocessing"]
    assert pre["image_size"] == [32, 32] and len(pre["mean"]) == len(pre["std"]) == 3
    assert "Normalize" in pre["transform"]
    assert meta["dtype"] == "float32" and meta["embed_dim"] == 16
    assert meta["device"] == "cpu" and meta["precision"] == "fp32"
    assert {"torch", "open_clip_torch", "timm", "transformers", "numpy"} <= set(meta["versions"])
    assert meta["versions"]["torch"]
