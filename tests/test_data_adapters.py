"""Adapters: COCO captions (synthetic), the generic folder format, caption choice, paths."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from _data_builders import write_coco
from modgap.data.adapters import (
    DatasetFormatError,
    adapt_coco,
    adapt_folder,
    choose_caption_index,
    display_path,
)
from modgap.data.config import load_dataset_config
from modgap.io import sha256_bytes


def coco_cfg(root: Path, **coco: object) -> dict:
    return load_dataset_config(
        {"source": "folder", "format": "coco", "path": str(root), "name": "coco2017", "coco": coco}
    )


def test_coco_one_row_per_image_with_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = Path("coco")
    write_coco(root, "train2017", [9, 25, 30])
    write_coco(root, "val2017", [139, 285])
    table = adapt_coco(root, coco_cfg(root, instances=True), seed=0, progress=False)
    assert list(table["id"]) == [f"coco-{i:012d}" for i in (9, 25, 30, 139, 285)]
    row = table.iloc[1]
    assert row["image_path"] == "coco/train2017/000000000025.jpg"
    assert row["caption"].startswith("img 25 cap ") and row["caption"] == row["caption"].strip()
    assert row["labels"] == ["dog", "person"]
    assert row["license"] == "NC License" and row["source"] == "coco2017"
    assert row["sha256"] == sha256_bytes(b"pixels 25")
    # The caption choice is seeded: same seed, same captions; another seed changes some.
    again = adapt_coco(root, coco_cfg(root, instances=True), seed=0, progress=False)
    assert list(again["caption"]) == list(table["caption"])
    other = adapt_coco(root, coco_cfg(root, instances=True), seed=1, progress=False)
    assert list(other["caption"]) != list(table["caption"])


def test_coco_without_instances_and_subset_choice(tmp_path: Path) -> None:
    write_coco(tmp_path, "val2017", [1, 2], instances=False)
    table = adapt_coco(tmp_path, coco_cfg(tmp_path, subsets=["val2017"]), seed=0, progress=False)
    assert len(table) == 2 and all(labels == [] for labels in table["labels"])
    assert os.path.isabs(table["image_path"].iloc[0])  # outside the working directory: absolute


def test_coco_missing_file_is_named(tmp_path: Path) -> None:
    write_coco(tmp_path, "val2017", [1, 2], instances=False)
    with pytest.raises(DatasetFormatError, match=r"captions_train2017\.json is missing"):
        adapt_coco(tmp_path, coco_cfg(tmp_path), seed=0, progress=False)
    (tmp_path / "val2017" / "000000000002.jpg").unlink()
    with pytest.raises(DatasetFormatError, match=r"000000000002\.jpg"):
        adapt_coco(tmp_path, coco_cfg(tmp_path, subsets=["val2017"]), seed=0, progress=False)


def folder_cfg(root: Path, **folder: object) -> dict:
    return load_dataset_config(
        {"source": "folder", "format": "folder", "path": str(root), "license": "CC0-1.0", "folder": folder}
    )


def test_folder_csv_with_multiple_captions(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    for name in ("a.png", "b.png"):
        (tmp_path / "imgs" / name).write_bytes(name.encode())
    (tmp_path / "captions.csv").write_text(
        "file,caption,labels\na.png,a red apple,fruit;red\na.png,an apple,fruit\nb.png,a bike,\n"
    )
    table = adapt_folder(tmp_path, folder_cfg(tmp_path, images_dir="imgs"), seed=0, progress=False)
    assert list(table["id"]) == ["a.png", "b.png"]
    assert table["labels"].tolist() == [["fruit", "red"], []]
    expected = ["a red apple", "an apple"][choose_caption_index("a.png", 2, 0)]
    assert table["caption"].iloc[0] == expected
    assert table["license"].tolist() == ["CC0-1.0", "CC0-1.0"]


def test_folder_jsonl_and_bad_rows(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_bytes(b"x")
    (tmp_path / "captions.jsonl").write_text(
        json.dumps({"id": "item-x", "file": "x.jpg", "caption": "an x", "labels": ["letter"]}) + "\n"
    )
    table = adapt_folder(tmp_path, folder_cfg(tmp_path), seed=0, progress=False)
    assert table.iloc[0][["id", "caption"]].tolist() == ["item-x", "an x"]
    assert table.iloc[0]["labels"] == ["letter"]
    (tmp_path / "captions.jsonl").write_text(json.dumps({"file": "x.jpg"}) + "\n")
    with pytest.raises(DatasetFormatError, match=r"captions\.jsonl: row 1: missing 'caption'"):
        adapt_folder(tmp_path, folder_cfg(tmp_path), seed=0, progress=False)


def test_caption_choice_is_per_item() -> None:
    picks = [choose_caption_index(f"id{i}", 5, 0) for i in range(200)]
    assert set(picks) == {0, 1, 2, 3, 4}
    assert picks == [choose_caption_index(f"id{i}", 5, 0) for i in range(200)]


def test_display_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert display_path(tmp_path / "a" / "b.jpg") == "a/b.jpg"
    assert display_path("/elsewhere/c.jpg") == "/elsewhere/c.jpg"
