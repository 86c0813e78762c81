"""Extraction failures: bad images, bad manifests and bad embeddings give clear, named errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _extract_fixtures import TinyEnv, build_tiny_env, single_torch_thread, write_manifest
from modgap import cli
from modgap.embed.encoder import ImageReadError, load_encoder, load_rgb
from modgap.embed.extract import META, ManifestError, extract_split
from modgap.errors import ChecksumError, ConfigError, InvalidEmbeddingsError
from modgap.io import sha256_file


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyEnv]:
    with single_torch_thread():
        yield build_tiny_env(tmp_path_factory.mktemp("embedded"))


def _with_image(env: TinyEnv, tmp_path: Path, rel: str, sha: str | None) -> Path:
    frame = env.frame.copy()
    target = frame["id"] == "item08"
    frame.loc[target, "image_path"] = rel
    frame.loc[target, "sha256"] = sha
    return write_manifest(frame, tmp_path / "manifest.parquet")


def test_missing_image_names_the_file(env: TinyEnv, tmp_path: Path) -> None:
    manifest = _with_image(env, tmp_path, "images/nope.jpg", None)
    with pytest.raises(ImageReadError, match=r"nope\.jpg.*item08.*does not exist"):
        extract_split(manifest, "diag", env.encoder, tmp_path / "out", root=env.root, progress=False)
    assert not (tmp_path / "out" / META).exists()


def test_corrupted_image_names_the_file(env: TinyEnv, tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.jpg"  # absolute image_path values are allowed too
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    manifest = _with_image(env, tmp_path, str(bad), sha256_file(bad))
    with pytest.raises(ImageReadError, match=r"corrupt\.jpg: not a readable image"):
        extract_split(manifest, "diag", env.encoder, tmp_path / "out", root=env.root, progress=False)
    assert not (tmp_path / "out" / META).exists()


def test_checksum_mismatch_names_the_file(env: TinyEnv, tmp_path: Path) -> None:
    manifest = _with_image(env, tmp_path, "images/img08.jpg", "0" * 64)
    with pytest.raises(ChecksumError, match=r"img08\.jpg: sha256"):
        extract_split(manifest, "diag", env.encoder, tmp_path / "out", root=env.root, progress=False)


def test_nan_embeddings_name_split_and_modality(env: TinyEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def nan_texts(captions, batch_size, progress=True):  # type: ignore[no-untyped-def]
        return np.full((len(captions), 16), np.nan, dtype=np.float32)

    monkeypatch.setattr(env.encoder, "encode_texts", nan_texts)
    with pytest.raises(InvalidEmbeddingsError, match=r"split 'diag' text embeddings.*NaN"):
        extract_split(env.manifest, "diag", env.encoder, tmp_path, root=env.root, progress=False)
    assert not (tmp_path / META).exists()


def test_manifest_errors(env: TinyEnv, tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="split 'val' has no rows"):
        extract_split(env.manifest, "val", env.encoder, tmp_path, root=env.root)
    frame = env.frame.copy()
    frame.loc[frame["id"] == "item09", "id"] = "item08"
    dupes = write_manifest(frame, tmp_path / "dupes.parquet")
    with pytest.raises(ManifestError, match="duplicate id 'item08'"):
        extract_split(dupes, "diag", env.encoder, tmp_path, root=env.root)
    nocol = write_manifest(env.frame.drop(columns=["stats_role"]), tmp_path / "nocol.parquet")
    with pytest.raises(ManifestError, match=r"missing column.*stats_role"):
        extract_split(nocol, "stats", env.encoder, tmp_path, root=env.root)


def test_encoder_argument_errors(env: TinyEnv, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="precision"):
        load_encoder(env.model, str(env.checkpoint), device="cpu", precision="int8")
    with pytest.raises(ConfigError, match="fp16"):
        load_encoder(env.model, str(env.checkpoint), device="cpu", precision="fp16")
    with pytest.raises(ConfigError, match=r"missing\.pt does not exist"):
        load_encoder(env.model, str(tmp_path / "missing.pt"), device="cpu")
    with pytest.raises(ConfigError, match="no-such-model"):
        load_encoder("no-such-model", None, device="cpu")


def test_transparency_is_composited_onto_white(tmp_path: Path) -> None:
    path = tmp_path / "clear.png"
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(path)
    img = load_rgb(path)
    assert img.mode == "RGB" and img.getpixel((0, 0)) == (255, 255, 255)


def test_cli_extract_and_error_exit(env: TinyEnv, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    common = ["--model", env.model, "--pretrained", str(env.checkpoint), "--device", "cpu"]
    common += ["--root", str(env.root), "--no-progress", "--batch-size", "2", "--shard-rows", "2"]
    args = ["embed", "extract", "--manifest", str(env.manifest), "--split", "train"]
    status = cli.main([*args, "--out-dir", str(tmp_path / "ok"), *common])
    assert status == 0 and (tmp_path / "ok" / META).is_file()
    assert np.load(tmp_path / "ok" / "image.npy").shape == (2, 16)

    broken = _with_image(env, tmp_path, "images/gone.jpg", None)
    args = ["embed", "extract", "--manifest", str(broken), "--split", "diag", "--out-dir", str(tmp_path / "bad")]
    status = cli.main([*args, *common])
    assert status == 2 and "gone.jpg" in capsys.readouterr().err


def test_worker_errors_keep_the_one_line_message() -> None:
    from modgap.embed.encoder import _unwrap_worker_error

    wrapped = ImageReadError(
        "Caught ImageReadError in DataLoader worker process 1.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\nmodgap.embed.encoder.ImageReadError: images/a.png: image file does not exist\n'
    )
    clean = _unwrap_worker_error(wrapped)
    assert isinstance(clean, ImageReadError) and str(clean) == "images/a.png: image file does not exist"
