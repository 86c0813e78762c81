"""Encoder report: metrics from paired diag embeddings, tables in three formats, stable figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modgap.errors import InvalidEmbeddingsError
from modgap.io import save_npy_atomic, write_json_atomic
from modgap.report.encoder import write_encoder_report


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _write_split(root, n=60, d=16, shift=0.8, seed=0, text_ids=None):
    rng = np.random.default_rng(seed)
    content = rng.normal(size=(n, d))
    offset = np.zeros(d)
    offset[0] = shift
    image = _unit(content + offset)
    text = _unit(content - offset + 0.05 * rng.normal(size=(n, d)))
    root.mkdir(parents=True)
    save_npy_atomic(root / "image.npy", image)
    save_npy_atomic(root / "text.npy", text)
    ids = [f"id{i:03d}" for i in range(n)]
    (root / "image_ids.txt").write_text("\n".join(ids) + "\n")
    (root / "text_ids.txt").write_text("\n".join(text_ids or ids) + "\n")
    write_json_atomic(root / "meta.json", {"model": "toy"})
    return image, text


def _report(tmp_path, suffix=""):
    return write_encoder_report(
        [{"encoder": "enc", "dataset": "ds"}],
        tmp_path / "emb",
        pca_split="diag",
        seed=0,
        metrics_out=tmp_path / f"metrics{suffix}.json",
        tables_prefix=tmp_path / f"table{suffix}",
        figure_prefix=tmp_path / f"pca{suffix}",
    )


def test_report_measures_planted_pairing_and_gap(tmp_path):
    image, text = _write_split(tmp_path / "emb/enc/ds/diag")
    (row,) = _report(tmp_path)
    # Pairs share their content: retrieval is near perfect, far above chance (1/60).
    assert row["i2t_R@1"] > 0.9 and row["t2i_R@1"] > 0.9
    assert row["chance_R@1"] == pytest.approx(1 / 60)
    assert row["centroid_gap"] == pytest.approx(np.linalg.norm(image.mean(0) - text.mean(0)), rel=1e-5)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["enc/ds"]["n"] == 60
    for ext in ("md", "csv", "tex"):
        assert "enc" in (tmp_path / f"table.{ext}").read_text()
    for ext in ("png", "pdf"):
        assert (tmp_path / f"pca.{ext}").stat().st_size > 1000


def test_report_bytes_are_deterministic(tmp_path):
    _write_split(tmp_path / "emb/enc/ds/diag")
    _report(tmp_path, "1")
    _report(tmp_path, "2")
    for name in ("metrics{}.json", "table{}.md", "table{}.csv", "pca{}.png", "pca{}.pdf"):
        assert (tmp_path / name.format(1)).read_bytes() == (tmp_path / name.format(2)).read_bytes(), name


def test_unpaired_rows_are_rejected(tmp_path):
    _write_split(tmp_path / "emb/enc/ds/diag", n=10, text_ids=[f"x{i}" for i in range(10)])
    with pytest.raises(InvalidEmbeddingsError, match="not paired"):
        _report(tmp_path)
