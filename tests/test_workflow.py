"""The Snakemake workflow and its DVC façade: lint-clean, buildable, and the two never drift apart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent


def _snakemake(project_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [str(BIN / "snakemake"), *args], cwd=project_root, capture_output=True, text=True, env=env, check=False
    )


def test_snakemake_lint_is_clean(project_root):
    result = _snakemake(project_root, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


def _snakemake_outputs(project_root: Path) -> list[str]:
    result = _snakemake(project_root, "--summary", "--forceall")
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    return [row[0] for row in rows[1:] if len(row) > 2]


def _dvc_outputs(project_root: Path) -> list[str]:
    stages = yaml.safe_load((project_root / "dvc.yaml").read_text())["stages"]
    paths = []
    for stage in stages.values():
        for section in ("outs", "metrics", "plots"):
            for entry in stage.get(section, []):
                paths.append(next(iter(entry)) if isinstance(entry, dict) else entry)
    return paths


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def test_dvc_outputs_are_produced_by_snakemake_and_do_not_overlap(project_root):
    produced = _snakemake_outputs(project_root)
    assert produced, "the default DAG has no outputs"
    dvc_outs = _dvc_outputs(project_root)
    for out in dvc_outs:
        assert any(_under(p, out) for p in produced), f"DVC tracks {out}, which no Snakemake rule produces"
    for i, a in enumerate(dvc_outs):
        for b in dvc_outs[i + 1 :]:
            assert not (_under(a, b) or _under(b, a)), f"DVC outputs overlap: {a} and {b}"


def test_every_snakemake_output_is_versioned_by_dvc(project_root):
    dvc_outs = _dvc_outputs(project_root)
    unversioned = [p for p in _snakemake_outputs(project_root) if not any(_under(p, o) for o in dvc_outs)]
    assert not unversioned, f"Snakemake outputs that DVC does not version: {unversioned[:5]}"


def test_dvc_params_file_is_the_workflow_config(project_root):
    stage = yaml.safe_load((project_root / "dvc.yaml").read_text())["stages"]["pipeline"]
    assert any("config/config.yaml" in (next(iter(p)) if isinstance(p, dict) else p) for p in stage["params"])
    assert "snakemake" in stage["cmd"]


def test_snakemake_rejects_bad_config_naming_the_key(project_root, tmp_path):
    # --configfile is merged over config/config.yaml, so override a value rather than delete a key.
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"embed": {"precision": "fp8"}}))
    result = _snakemake(project_root, "-n", "--configfile", str(bad))
    assert result.returncode != 0
    assert "embed.precision" in result.stdout + result.stderr
