"""Sources: the embedded copy's verification, local folders, Hugging Face snapshots (mocked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from _data_builders import make_embedded
from modgap.data import sources
from modgap.data.config import load_dataset_config
from modgap.errors import ChecksumError, ConfigError, DownloadError


def test_embedded_verifies(tmp_path: Path) -> None:
    root = make_embedded(tmp_path / "emb")
    table = sources.verify_embedded(root / "manifest.csv", progress=False)
    assert len(table) == 6


def test_embedded_corrupted_image_names_file(tmp_path: Path) -> None:
    root = make_embedded(tmp_path / "emb")
    (root / "images" / "img3.jpg").write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match=r"images/img3\.jpg \(sha256 [0-9a-f]{64}, manifest says"):
        sources.verify_embedded(root / "manifest.csv", progress=False)


def test_embedded_missing_image_names_file(tmp_path: Path) -> None:
    root = make_embedded(tmp_path / "emb")
    (root / "images" / "img1.jpg").unlink()
    with pytest.raises(ChecksumError, match=r"images/img1\.jpg \(missing\)"):
        sources.verify_embedded(root / "manifest.csv", progress=False)


def test_embedded_missing_manifest_and_column(tmp_path: Path) -> None:
    with pytest.raises(ChecksumError, match=r"manifest\.csv is missing"):
        sources.verify_embedded(tmp_path / "manifest.csv", progress=False)
    root = make_embedded(tmp_path / "emb")
    pd.read_csv(root / "manifest.csv").drop(columns="sha256").to_csv(root / "manifest.csv", index=False)
    with pytest.raises(ChecksumError, match=r"missing column.*sha256"):
        sources.verify_embedded(root / "manifest.csv", progress=False)


def test_folder_source_must_exist(tmp_path: Path) -> None:
    cfg = load_dataset_config({"source": "folder", "format": "folder", "path": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match=r"key 'path'.*nope"):
        sources.fetch(cfg, tmp_path)
    (tmp_path / "yes").mkdir()
    cfg = load_dataset_config({"source": "folder", "format": "folder", "path": str(tmp_path / "yes")})
    assert sources.fetch(cfg, tmp_path) == tmp_path / "yes"


def test_hf_snapshot_download_is_called_with_pinned_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def fake_snapshot_download(*args: Any, **kwargs: Any) -> str:
        calls.append((args, kwargs))
        local = Path(kwargs["local_dir"])
        local.mkdir(parents=True, exist_ok=True)
        (local / "captions.csv").write_text("file,caption\na.jpg,a cat\n")
        return str(local)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    cfg = load_dataset_config(
        {
            "source": "hf",
            "format": "folder",
            "hf": {"repo_id": "someone/tiny-captions", "revision": "a" * 40, "allow_patterns": ["*.csv", "*.jpg"]},
        }
    )
    root = sources.fetch(cfg, tmp_path / "raw")
    assert root == tmp_path / "raw" and (root / "captions.csv").is_file()
    ((args, kwargs),) = calls
    assert args == ("someone/tiny-captions",)
    assert kwargs["repo_type"] == "dataset" and kwargs["revision"] == "a" * 40
    assert kwargs["allow_patterns"] == ["*.csv", "*.jpg"]


def test_hf_failure_names_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    def offline(*args: Any, **kwargs: Any) -> str:
        raise OSError("offline and not cached")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(DownloadError, match=r"someone/tiny-captions@main.*offline"):
        sources.fetch_hf("someone/tiny-captions", tmp_path, revision="main")
