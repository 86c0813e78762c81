"""`modgap workflow verify` on planted differences in a throw-away git repository."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modgap.workflow.verify import DIFFERS, IDENTICAL, MISSING, WITHIN, verify

GAP = {"run": {"G_mu": 0.353, "dim": 256, "name": "embedded"}, "environment": {"lock_sha256": "aaa"}}
EVAL = {"run": {"avg": 0.25, "avg_ci_halfwidth": 0.02, "pope": 0.5, "cider_d": 0.1, "cider_d_ci": [0.05, 0.15]}}
TABLE = 'regime,Avg,Avg 95% CI,POPE\nno-stage1,0.25,"[0.23, 0.27]",0.5\n'


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def _write(root: Path, rel: str, content: str | dict) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n" if isinstance(content, dict) else content)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    _write(root, "results/metrics/gap.json", GAP)
    _write(root, "results/metrics/eval.json", EVAL)
    _write(root, "results/tables/eval/e/regimes.csv", TABLE)
    _write(root, "results/tables/eval/e/regimes.md", "| Avg |\n| 0.25 |\n")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "results")
    return root


def _verdicts(root: Path) -> dict[str, str]:
    return {r.path: r.verdict for r in verify(root)}


def test_untouched_workspace_is_identical(repo):
    assert set(_verdicts(repo).values()) == {IDENTICAL}


def test_geometry_beyond_1e9_differs_and_names_the_key(repo):
    _write(repo, "results/metrics/gap.json", {**GAP, "run": {**GAP["run"], "G_mu": 0.353 * (1 + 1e-7)}})
    (result,) = [r for r in verify(repo) if r.path.endswith("gap.json")]
    assert result.verdict == DIFFERS
    assert result.differences[0].startswith("run.G_mu: 0.353 -> 0.3530000353")


def test_geometry_in_the_15th_digit_is_within_tolerance(repo):
    _write(repo, "results/metrics/gap.json", {**GAP, "run": {**GAP["run"], "G_mu": 0.353 * (1 + 3e-15)}})
    assert _verdicts(repo)["results/metrics/gap.json"] == WITHIN


def test_training_numbers_are_judged_by_their_interval(repo):
    inside = {"run": {**EVAL["run"], "avg": 0.265, "cider_d": 0.14}}  # within ±0.02 and ±0.05
    _write(repo, "results/metrics/eval.json", inside)
    assert _verdicts(repo)["results/metrics/eval.json"] == WITHIN
    outside = {"run": {**EVAL["run"], "avg": 0.275}}
    _write(repo, "results/metrics/eval.json", outside)
    assert _verdicts(repo)["results/metrics/eval.json"] == DIFFERS
    no_interval = {"run": {**EVAL["run"], "pope": 0.505}}  # no interval recorded: the strict tolerance applies
    _write(repo, "results/metrics/eval.json", no_interval)
    assert _verdicts(repo)["results/metrics/eval.json"] == DIFFERS


def test_csv_uses_its_interval_column_and_renderings_follow_their_table(repo):
    _write(repo, "results/tables/eval/e/regimes.csv", TABLE.replace("0.25,", "0.26,"))
    _write(repo, "results/tables/eval/e/regimes.md", "| Avg |\n| 0.26 |\n")
    verdicts = _verdicts(repo)
    assert verdicts["results/tables/eval/e/regimes.csv"] == WITHIN
    assert verdicts["results/tables/eval/e/regimes.md"] == WITHIN
    _write(repo, "results/tables/eval/e/regimes.csv", TABLE.replace("0.25,", "0.30,"))
    assert _verdicts(repo)["results/tables/eval/e/regimes.md"] == DIFFERS


def test_a_changed_string_or_key_set_differs(repo):
    _write(repo, "results/metrics/gap.json", {**GAP, "run": {**GAP["run"], "name": "other"}})
    assert _verdicts(repo)["results/metrics/gap.json"] == DIFFERS
    _write(repo, "results/metrics/gap.json", {**GAP, "run": {"G_mu": 0.353, "dim": 256}})
    (result,) = [r for r in verify(repo) if r.path.endswith("gap.json")]
    assert result.differences == ["run.name: removed"]


def test_environment_is_a_note_not_a_verdict(repo):
    _write(repo, "results/metrics/gap.json", {**GAP, "environment": {"lock_sha256": "bbb"}})
    (result,) = [r for r in verify(repo) if r.path.endswith("gap.json")]
    assert result.verdict == IDENTICAL
    assert "lock_sha256: 'aaa' -> 'bbb'" in result.notes[0]


def test_missing_file_fails_and_the_cli_exits_non_zero(repo):
    (repo / "results/metrics/gap.json").unlink()
    assert _verdicts(repo)["results/metrics/gap.json"] == MISSING
    cli = Path(sys.executable).parent / "modgap"
    result = subprocess.run([str(cli), "workflow", "verify", "--root", str(repo)], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout.strip().endswith("verdict: DIFFERS")


ENCODER = {"enc/ds": {"model": {"checkpoint_sha256": "a" * 64}, "i2t_R@1": 0.178}}


def _retrain(repo: Path, *, sha: str, g_mu: float, verdict: str = "holds") -> None:
    """Commit an encoder record and a claim, then write the workspace's retrained versions."""
    _write(repo, "results/metrics/encoder.json", ENCODER)
    _write(repo, "results/metrics/claims.json", {"c1": {"verdict": "holds", "value": 0.3}})
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "encoder")
    _write(repo, "results/metrics/encoder.json", {"enc/ds": {"model": {"checkpoint_sha256": sha}, "i2t_R@1": 0.1775}})
    _write(repo, "results/metrics/gap.json", {**GAP, "run": {**GAP["run"], "G_mu": g_mu}})
    _write(repo, "results/metrics/claims.json", {"c1": {"verdict": verdict, "value": 0.301}})


def _by_path(repo: Path) -> dict:
    return {r.path: r for r in verify(repo)}


def test_a_retrained_encoder_moves_geometry_within_the_retrained_tolerance(repo):
    _retrain(repo, sha="b" * 64, g_mu=0.353 * 1.005)
    results = _by_path(repo)
    assert results["results/metrics/gap.json"].verdict == WITHIN
    assert any("encoder retrained" in n for n in results["results/metrics/gap.json"].notes)
    assert results["results/metrics/encoder.json"].verdict == WITHIN  # the checksum is a note
    assert results["results/metrics/claims.json"].verdict == WITHIN


def test_a_retrained_encoder_still_fails_beyond_one_percent_and_on_a_flipped_verdict(repo):
    _retrain(repo, sha="b" * 64, g_mu=0.353 * 1.05, verdict="does not hold")
    results = _by_path(repo)
    assert results["results/metrics/gap.json"].verdict == DIFFERS
    assert any("run.G_mu" in d for d in results["results/metrics/gap.json"].differences)
    assert results["results/metrics/claims.json"].verdict == DIFFERS
    assert any("c1.verdict" in d for d in results["results/metrics/claims.json"].differences)


def test_the_same_checkpoint_keeps_the_geometry_tolerance(repo):
    """Same encoder checkpoint: a 0.5 % move in geometry is a real difference, not retraining."""
    _retrain(repo, sha="a" * 64, g_mu=0.353 * 1.005)
    assert _by_path(repo)["results/metrics/gap.json"].verdict == DIFFERS


def test_a_retrained_encoder_judges_recall_by_its_binomial_interval(repo):
    """R@1 over 832 pairs moving by 2 pairs (1.2 %) is inside its 95 % binomial interval (±0.027);
    moving by 0.1 is not."""
    _write(repo, "results/metrics/encoder.json", {"enc/ds": {**ENCODER["enc/ds"], "n": 832}})
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "encoder")
    for new, verdict in ((0.178 + 2 / 832, WITHIN), (0.278, DIFFERS)):
        record = {"enc/ds": {"model": {"checkpoint_sha256": "b" * 64}, "i2t_R@1": new, "n": 832}}
        _write(repo, "results/metrics/encoder.json", record)
        result = _by_path(repo)["results/metrics/encoder.json"]
        assert result.verdict == verdict, result.render()
