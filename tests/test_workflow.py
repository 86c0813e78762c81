"""The Snakemake workflow and its DVC façade: lint-clean, buildable, and the two never drift apart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import PROJECT_ROOT

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


def test_plain_snakemake_finds_the_snakefile_and_the_default_profile(project_root):
    # README's command has no flags: Snakemake's own discovery must find workflow/Snakefile and the
    # workflow profile beside it (which sets the cores; without it Snakemake stops: "cores have to be specified").
    result = _snakemake(project_root, "-n")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "Using workflow specific profile workflow/profiles/default" in out
    assert not (project_root / "Snakefile").exists(), "a top-level Snakefile would shadow workflow/Snakefile"


def test_dvc_stage_runs_plain_snakemake():
    stage = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]["pipeline"]
    assert stage["cmd"] == "snakemake"  # the README command, so `dvc repro` = `snakemake`
    assert "workflow/Snakefile" in stage["deps"]


@pytest.fixture(scope="module")
def snakemake_outputs() -> list[str]:
    """Every file (or directory) a rule of the default DAG writes, from `snakemake --summary --forceall`."""
    result = _snakemake(PROJECT_ROOT, "--summary", "--forceall")
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    return [row[0] for row in rows[1:] if len(row) > 2]


def _dvc_yaml() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())


def _dvc_outputs() -> list[str]:
    """Paths the stages track: outs, metrics and stage-level plots (all of them DVC outputs)."""
    paths = []
    for stage in _dvc_yaml()["stages"].values():
        for section in ("outs", "metrics", "plots"):
            for entry in stage.get(section, []):
                paths.append(next(iter(entry)) if isinstance(entry, dict) else entry)
    return paths


def _dvc_plot_files() -> list[str]:
    """Data files of the top-level `plots:` definitions (an id, or the files of its `y:` mapping)."""
    files = []
    for entry in _dvc_yaml().get("plots", []):
        plot_id, props = next(iter(entry.items())) if isinstance(entry, dict) else (entry, None)
        y = (props or {}).get("y")
        files += list(y) if isinstance(y, dict) else [plot_id]
    return files


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def test_dvc_outputs_are_produced_by_snakemake_and_do_not_overlap(snakemake_outputs):
    assert snakemake_outputs, "the default DAG has no outputs"
    dvc_outs = _dvc_outputs()
    for out in dvc_outs:
        assert any(_under(p, out) for p in snakemake_outputs), f"DVC tracks {out}, which no Snakemake rule produces"
    for i, a in enumerate(dvc_outs):
        for b in dvc_outs[i + 1 :]:
            assert not (_under(a, b) or _under(b, a)), f"DVC outputs overlap: {a} and {b}"


def test_every_snakemake_output_is_versioned_by_dvc(snakemake_outputs):
    dvc_outs = _dvc_outputs()
    unversioned = [p for p in snakemake_outputs if not any(_under(p, o) for o in dvc_outs)]
    assert not unversioned, f"Snakemake outputs that DVC does not version: {unversioned[:5]}"


def test_dvc_plots_are_snakemake_outputs_inside_versioned_outputs(snakemake_outputs):
    plot_files = _dvc_plot_files()
    assert any(f.endswith(".png") for f in plot_files) and any(f.endswith((".csv", ".json")) for f in plot_files)
    dvc_outs = _dvc_outputs()
    for path in plot_files:
        # A file a rule declares (or one inside a declared directory), never a side file a rule happens to write.
        assert any(_under(path, p) for p in snakemake_outputs), f"DVC plots {path}, which no Snakemake rule declares"
        assert any(_under(path, o) for o in dvc_outs), f"DVC plots {path}, which no DVC output versions"


def test_every_figure_is_a_dvc_plot(snakemake_outputs):
    # PNG is the rendered form DVC shows; each figure also has a PDF twin that DVC cannot render.
    figures = {p for p in snakemake_outputs if p.startswith("results/figures/") and p.endswith(".png")}
    missing = sorted(figures - set(_dvc_plot_files()))
    assert not missing, f"figures missing from the `plots:` section of dvc.yaml: {missing}"


def test_dvc_params_file_is_the_workflow_config():
    stage = _dvc_yaml()["stages"]["pipeline"]
    assert any("config/config.yaml" in (next(iter(p)) if isinstance(p, dict) else p) for p in stage["params"])
    assert "snakemake" in stage["cmd"]


def test_snakemake_rejects_bad_config_naming_the_key(project_root, tmp_path):
    # --configfile is merged over config/config.yaml, so override a value rather than delete a key.
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"embed": {"precision": "fp8"}}))
    result = _snakemake(project_root, "-n", "--configfile", str(bad))
    assert result.returncode != 0
    assert "embed.precision" in result.stdout + result.stderr


class _Resources(dict):
    """A job's resources as the executor plugins read them: ``.get`` and attribute access."""

    __getattr__ = dict.__getitem__


def _dry_run_jobs(out: str) -> list[dict]:
    """(rule, resources, shell) of each job a `snakemake -n -p` printed."""
    jobs: list[dict] = []
    for line in out.splitlines():
        if line.startswith(("rule ", "localrule ")):
            jobs.append({"rule": line.split()[-1].rstrip(":"), "resources": {}, "shell": ""})
        elif jobs and line.startswith("    resources:"):
            for item in line.split(":", 1)[1].split(", "):
                key, _, value = item.strip().partition("=")
                jobs[-1]["resources"][key] = int(value) if value.isdigit() else value
        elif jobs and "mllm launch" in line:
            jobs[-1]["shell"] = line.strip()
    return jobs


def test_multinode_mllm_training_becomes_one_slurm_job_over_n_nodes(project_root, tmp_path):
    """`resources.rules.mllm_stage1: {nodes: 2, gpu: 8}` gives, through the SLURM plugin installed here, one
    sbatch over 2 nodes with 8 GPUs each (GRES, per node; --gpus would be the job's total), 2 tasks, and a
    command the jobstep runs in the batch step (mpi), where `modgap mllm launch` starts one srun task per
    node. Fails if the resources map to --gpus, to --ntasks-per-gpu, or to a one-node step."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    overlay = tmp_path / "multinode.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {
                "mllm": {"accelerate_config": "config/accelerate/multinode-deepspeed.yaml"},
                "resources": {"rules": {"mllm_stage1": {"nodes": 2, "gpu": 8, "threads": 16, "mem_mb": 400000}}},
            }
        )
    )
    result = _snakemake(project_root, "-n", "-p", "--forceall", "--configfile", "config/config.yaml", str(overlay))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    jobs = [j for j in _dry_run_jobs(out) if j["rule"] == "mllm_stage1"]
    assert jobs
    for job in jobs:
        assert "--nodes 2 --gpus-per-node 8 --" in job["shell"]
        res = _Resources(job["resources"])
        fake = type("Job", (), {"resources": res, "threads": 16})()
        params = {
            "run_uuid": "u",
            "slurm_logfile": "l",
            "comment_str": "c",
            "account": "",
            "partition": "",
            "workdir": "",
        }
        sbatch = get_submit_command(fake, params) + set_gres_string(fake)
        assert "--nodes=2" in sbatch and "--ntasks=2" in sbatch and "--gres=gpu:8" in sbatch, sbatch
        assert "--gpus=" not in sbatch and "--ntasks-per-gpu" not in sbatch, sbatch
        assert "mpi" in res  # the jobstep plugin then runs the command itself instead of `srun -n1`
    stage2 = [j for j in _dry_run_jobs(out) if j["rule"] == "mllm_stage2"]
    assert stage2 and all("--nodes 1 --gpus-per-node 0 --" in j["shell"] for j in stage2)
    assert all("nodes" not in j["resources"] for j in stage2)


@pytest.mark.parametrize(
    ("overlay", "key"),
    [
        ({"resources": {"rules": {"gap_stats": {"nodes": 2}}}}, "resources.rules.gap_stats.nodes"),
        ({"resources": {"default": {"nodes": 2}}}, "resources.default.nodes"),
        ({"resources": {"rules": {"mllm_stage2": {"nodes": 2}}}}, "resources.rules.mllm_stage2.nodes"),
        ({"resources": {"rules": {"mllm_stage1": {"nodes": 0}}}}, "resources.rules.mllm_stage1.nodes"),
    ],
)
def test_misplaced_nodes_are_refused_naming_the_key(project_root, tmp_path, overlay, key):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(overlay))
    result = _snakemake(project_root, "-n", "--configfile", "config/config.yaml", str(bad))
    assert result.returncode != 0 and key in result.stdout + result.stderr, (result.stdout + result.stderr)[-2000:]
