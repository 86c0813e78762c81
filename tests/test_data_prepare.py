"""`modgap data prepare` end to end: embedded, folder and HTTP (loopback) COCO sources."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from _data_builders import make_embedded, write_coco
from _data_http import FakeServer, serve
from modgap.cli import main
from modgap.data.prepare import MANIFEST_SCHEMA, read_manifest

COLUMNS = ["id", "image_path", "caption", "labels", "split", "stats_role", "source", "license", "sha256"]


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with serve() as state:
        yield state


def test_prepare_embedded_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    make_embedded(Path("data/embedded"), n=20)
    cfg = {
        "source": "embedded",
        "format": "embedded",
        "path": "data/embedded",
        "splits": {"stats": 0.4, "diag": 0.2, "train": 0.2, "test": 0.2},
    }
    out = Path("resources/datasets/embedded/manifest.parquet")
    argv = ["data", "prepare", "--dataset-config", json.dumps(cfg), "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    assert pq.read_schema(out).equals(MANIFEST_SCHEMA)
    table = read_manifest(out)
    assert list(table.columns) == COLUMNS and len(table) == 20
    assert table["image_path"].iloc[0] == "data/embedded/images/img0.jpg"
    assert table.loc[table["id"] == "e01", "labels"].item() == ["animal", "red"]
    summary = json.loads((out.parent / "summary.json").read_text())
    assert summary["splits"] == {"stats": 8, "diag": 4, "train": 4, "test": 4}
    assert summary["stats_roles"] == {"image": 4, "text": 4}
    assert summary["labels"] == {"animal": 10, "red": 10}
    assert summary["sources"] == {"fakepkg": 20}
    # Same config + seed: byte-identical manifest; --seed changes the split.
    first = out.read_bytes()
    assert main(argv) == 0 and out.read_bytes() == first
    assert main([*argv, "--seed", "5"]) == 0
    assert not read_manifest(out)["split"].equals(table["split"])


def test_prepare_embedded_corrupted_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_embedded(tmp_path / "emb")
    (root / "images" / "img2.jpg").write_bytes(b"bad")
    out = tmp_path / "ds" / "manifest.parquet"
    cfg = json.dumps({"source": "embedded", "format": "embedded", "path": str(root)})
    assert main(["data", "prepare", "--dataset-config", cfg, "--out", str(out), "--no-progress"]) == 2
    assert "img2.jpg" in capsys.readouterr().err
    assert not out.exists()


def test_prepare_bad_config_names_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "ds.yaml"
    cfg.write_text("source: http\nformat: coco\nurl: http://x/a.zip\nsplits: {stats: 0.5, diag: 0.5, train: 0.5}\n")
    assert main(["data", "prepare", "--dataset-config", str(cfg), "--out", str(tmp_path / "m.parquet")]) == 2
    err = capsys.readouterr().err
    assert "ds.yaml" in err and "splits" in err


def test_prepare_folder_with_counts(tmp_path: Path) -> None:
    for i in range(12):
        (tmp_path / f"{i}.png").write_bytes(bytes([i]))
    pd.DataFrame({"file": [f"{i}.png" for i in range(12)], "caption": [f"shape {i}" for i in range(12)]}).to_csv(
        tmp_path / "captions.csv", index=False
    )
    cfg = {
        "source": "folder",
        "format": "folder",
        "path": str(tmp_path),
        "name": "shapes",
        "max_items": 10,
        "splits": {"stats": 4, "diag": 2, "train": 2, "test": 2},
    }
    out = tmp_path / "out" / "manifest.parquet"
    assert main(["data", "prepare", "--dataset-config", json.dumps(cfg), "--out", str(out), "--no-progress"]) == 0
    table = read_manifest(out)
    assert len(table) == 10 and table["split"].value_counts().to_dict() == {
        "stats": 4,
        "diag": 2,
        "train": 2,
        "test": 2,
    }
    assert table["sha256"].iloc[0] == hashlib.sha256(bytes([int(table["id"].iloc[0][:-4])])).hexdigest()


def test_prepare_http_coco_archive(tmp_path: Path, server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    write_coco(src, "val2017", [1, 2, 3, 4, 5, 6])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(src).as_posix())
    data = buf.getvalue()
    server.files["/coco/val.zip"] = data
    server.drop_after["/coco/val.zip"] = 2048  # the download is interrupted once and resumed
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("modgap.data.download.RETRY_BACKOFF_S", 0.0)
    cfg = {
        "source": "http",
        "format": "coco",
        "name": "coco2017",
        "url": server.url("/coco/val.zip"),
        "sha256": hashlib.sha256(data).hexdigest(),
        "coco": {"subsets": ["val2017"], "instances": True},
        "splits": {"stats": 0.5, "diag": 0.0, "train": 0.5, "test": 0.0},
    }
    out = Path("resources/datasets/coco/manifest.parquet")
    assert main(["data", "prepare", "--dataset-config", json.dumps(cfg), "--out", str(out), "--no-progress"]) == 0
    table = read_manifest(out)
    assert len(table) == 6 and set(table["split"]) == {"stats", "train"}
    assert table["image_path"].iloc[0] == "resources/datasets/coco/raw/val2017/000000000001.jpg"
    assert (out.parent / "raw" / "downloads" / "val.zip").is_file()
    assert server.ranges("/coco/val.zip")[-1] == "bytes=2048-"
    # A rerun uses the verified download and the extraction marker: no new request.
    n = len(server.requests)
    assert main(["data", "prepare", "--dataset-config", json.dumps(cfg), "--out", str(out), "--no-progress"]) == 0
    assert len(server.requests) == n
