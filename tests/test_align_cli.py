"""`modgap align run/report/study-*` on a tiny synthetic embeddings tree; fit never sees diag pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modgap.align.base import AlignMethod
from modgap.cli import main
from test_align_data import gapped


def write_split(root: Path, split: str, x: np.ndarray, y: np.ndarray, paired: bool) -> Path:
    d = root / split
    d.mkdir(parents=True)
    np.save(d / "image.npy", x)
    np.save(d / "text.npy", y)
    (d / "image_ids.txt").write_text("".join(f"{split}-{i}\n" for i in range(len(x))))
    off = 0 if paired else 10_000
    (d / "text_ids.txt").write_text("".join(f"{split}-{i + off}\n" for i in range(len(y))))
    return d


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "emb"
    write_split(root, "stats", gapped(400, seed=1, modality="image"), gapped(300, seed=2), paired=False)
    for i, split in enumerate(("train", "diag")):
        write_split(root, split, gapped(120, seed=10 + i, modality="image"), gapped(120, seed=20 + i), paired=True)
    return root


def run(tree: Path, out: Path, method: str, params: str = "{}") -> int:
    return main(
        [
            "align",
            "run",
            "--method",
            method,
            "--params",
            params,
            "--stats-dir",
            str(tree / "stats"),
            "--splits-root",
            str(tree),
            "--splits",
            "train",
            "diag",
            "--diag-dir",
            str(tree / "diag"),
            "--out-dir",
            str(out / method),
            "--pairs",
            "2000",
        ]
    )


def test_run_report_and_fit_never_sees_diag(tree, tmp_path, monkeypatch):
    seen: list = []
    original = AlignMethod.fit

    def spy(self, image_source, text_source):
        seen.append((str(image_source), str(text_source)))
        return original(self, image_source, text_source)

    monkeypatch.setattr(AlignMethod, "fit", spy)
    out = tmp_path / "align"
    for method in ("identity", "c3", "realign", "blockwise"):
        assert run(tree, out, method) == 0
    assert all("stats" in a and "stats" in b and "diag" not in a + b for a, b in seen)
    diag = json.loads((out / "realign" / "diagnostics.json").read_text())
    assert diag["in_sample"]["delta_mu"] < diag["held_out"]["centroid"]["delta_mu"]
    assert {"Phi", "Psi", "Omega_20", "mixing", "residual", "cosine_js"} <= set(diag["held_out"])
    sub = np.load(out / "realign" / "substitutes" / "train.npy")
    assert sub.shape == (120, 16) and sub.dtype == np.float32
    assert (out / "realign" / "state.safetensors").exists()
    studies = out / "_studies"
    assert (
        main(
            [
                "align",
                "study-n",
                "--stats-dir",
                str(tree / "stats"),
                "--diag-dir",
                str(tree / "diag"),
                "--sizes",
                "50",
                "200",
                "--seeds",
                "2",
                "--out",
                str(studies / "sample_size.json"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "align",
                "study-precision",
                "--stats-dir",
                str(tree / "stats"),
                "--n",
                "20000",
                "--out",
                str(studies / "precision.json"),
            ]
        )
        == 0
    )
    rc = main(
        [
            "align",
            "report",
            "--inputs",
            str(out),
            "--tables-dir",
            str(tmp_path / "tables"),
            "--figures-dir",
            str(tmp_path / "fig"),
            "--metrics",
            str(tmp_path / "align.json"),
        ]
    )
    assert rc == 0
    table = (tmp_path / "tables" / "align_metrics.md").read_text()
    assert "realign" in table and "(0.012)" in table
    assert (tmp_path / "fig" / "align_centroid_gap.png").exists()
    assert json.loads((tmp_path / "align.json").read_text())["methods"]["realign"]["delta_mu"] is not None


def test_paired_stats_split_is_rejected(tree, tmp_path, capsys):
    (tree / "stats" / "text_ids.txt").write_text((tree / "stats" / "image_ids.txt").read_text()[: 300 * 8])
    assert run(tree, tmp_path / "a", "realign") == 2
    assert "must be unpaired" in capsys.readouterr().err


def test_diag_overlap_is_rejected(tree, tmp_path, capsys):
    (tree / "diag" / "image_ids.txt").write_text("stats-3\n")
    assert run(tree, tmp_path / "a", "realign") == 2
    assert "held out from fitting" in capsys.readouterr().err


def test_bad_params_json(tree, tmp_path, capsys):
    assert run(tree, tmp_path / "a", "realign", "{nope") == 2
    assert "--params" in capsys.readouterr().err
