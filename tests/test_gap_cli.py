"""`modgap gap stats` / `modgap gap report` end to end on planted embeddings written like the embed stage."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from modgap.cli import main
from modgap.gap.synthetic import planted_pairs


def _write_split(directory: Path, x: np.ndarray, y: np.ndarray, paired: bool) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "image.npy", x)
    np.save(directory / "text.npy", y)
    (directory / "image_ids.txt").write_text("".join(f"p{i}\n" for i in range(len(x))))
    prefix = "p" if paired else "q"
    (directory / "text_ids.txt").write_text("".join(f"{prefix}{i}\n" for i in range(len(y))))


@pytest.fixture(scope="module")
def embeddings(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("emb") / "enc" / "ds"
    planted = planted_pairs(1800, 32, p_shared=(0.3, 0.2, 0.15), p_resid=(0.2, 0.1, 0.05), seed=3)
    _write_split(root / "stats", planted.x[:600], planted.y[600:1200], paired=False)
    _write_split(root / "diag", planted.x[1200:], planted.y[1200:], paired=True)
    return root


PARAMS = json.dumps(
    {"oracle_k": 4, "eta_ranks": [2, 4], "mixing_shuffles": 3, "phantom_mc": 2000, "alphas": [0.0, 0.5, 1.0]}
)


def test_stats_and_report(embeddings, tmp_path):
    out = tmp_path / "gap" / "enc" / "ds"
    argv = ["gap", "stats", "--stats-dir", str(embeddings / "stats"), "--diag-dir", str(embeddings / "diag")]
    assert main([*argv, "--out-dir", str(out), "--params", PARAMS]) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["meta"]["encoder"] == "enc" and stats["meta"]["dataset"] == "ds"
    assert stats["marginal"]["G_mu"] == pytest.approx(0.6 * np.sqrt(2), abs=0.06)
    assert set(stats["paired"]["eta_U"]) == {"2", "4"}
    with np.load(out / "spectra.npz") as spectra:
        assert spectra["eig_resid"].shape == (32,)

    report = ["gap", "report", "--runs", str(out), "--figures-dir", str(tmp_path / "fig")]
    report += ["--tables-dir", str(tmp_path / "tab"), "--metrics", str(tmp_path / "metrics" / "gap.json")]
    assert main(report) == 0
    metrics = json.loads((tmp_path / "metrics" / "gap.json").read_text())
    assert metrics["enc"]["ds"]["paired.A_r"] == pytest.approx(stats["paired"]["A_r"])
    table = (tmp_path / "tab" / "gap_stats.md").read_text()
    assert re.search(r"\| A_r +\|", table) and "28.6" in table and "LLM2CLIP" in table
    assert (tmp_path / "tab" / "gap_transforms.csv").exists()
    first = {p.name: p.read_bytes() for p in (tmp_path / "fig").iterdir()}
    assert {f"gap_aa_fig{i}_enc_ds.{ext}" for i in (1, 2, 3) for ext in ("png", "pdf")} <= set(first)
    # Figures are byte-identical on a rerun (no timestamps in PNG/PDF metadata).
    from modgap.gap.figures import aa_fig2
    from modgap.gap.report import load_run

    again = aa_fig2(*load_run(out), "ours: enc on ds", tmp_path / "again")
    rerun = aa_fig2(*load_run(out), "ours: enc on ds", tmp_path / "again2")
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in rerun]


def test_stats_errors_are_one_line(embeddings, tmp_path, capsys):
    bad = tmp_path / "bad"
    x = np.load(embeddings / "diag" / "image.npy")
    x[7, 1] = np.nan
    _write_split(bad, x, np.load(embeddings / "diag" / "text.npy"), paired=True)
    argv = ["gap", "stats", "--stats-dir", str(embeddings / "stats"), "--diag-dir", str(bad)]
    assert main([*argv, "--out-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "image.npy: 1 row(s) contain NaN or Inf, first at row 7" in err
    assert not (tmp_path / "o" / "stats.json").exists()
    assert main([*argv[:-1], str(embeddings / "stats"), "--out-dir", str(tmp_path / "o")]) == 2
    assert "not a paired split" in capsys.readouterr().err
    assert main([*argv, "--out-dir", str(tmp_path / "o"), "--params", '{"nope": 1}']) == 2
    assert "unknown key 'nope'" in capsys.readouterr().err


def test_report_names_a_missing_input(tmp_path):
    from modgap.errors import MissingInputError
    from modgap.gap.report import load_run

    with pytest.raises(MissingInputError, match=r"stats.json: gap statistics missing \(run `modgap gap stats` first\)"):
        load_run(tmp_path)
