"""`modgap mllm launch`: the command each process runs, inside and outside a SLURM allocation of several
nodes, and a real two-"node" CPU run through the launcher (a stand-in `srun` starts the node tasks on this
machine) that must match one process with the same global batch."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
import yaml

from modgap.errors import ConfigError
from modgap.mllm.launch import NODE_TASK_ENV, expand_hostlist, plan, read_accelerate_config

ROOT = Path(__file__).resolve().parents[1]
MULTINODE = str(ROOT / "config" / "accelerate" / "multinode-deepspeed.yaml")  # 16 processes on 2 machines
EIGHT_GPU = str(ROOT / "config" / "accelerate" / "8gpu-deepspeed.yaml")
TRAIN = ["mllm", "train", "--stage", "1", "--out-dir", "out"]


@pytest.mark.parametrize(
    ("nodelist", "names"),
    [
        ("gpu07", ["gpu07"]),
        ("a,b", ["a", "b"]),
        ("gpu[07-09,12],login1", ["gpu07", "gpu08", "gpu09", "gpu12", "login1"]),
        ("r[1-2]n[01-02]", ["r1n01", "r1n02", "r2n01", "r2n02"]),
        ("node[8-11]", ["node8", "node9", "node10", "node11"]),
    ],
)
def test_hostlist_expansion_matches_slurm(nodelist: str, names: list[str]) -> None:
    assert expand_hostlist(nodelist) == names


@pytest.mark.parametrize("nodelist", ["gpu[07-09", "gpu]1[", "gpu[9-7]", "gpu[a-b]", "a,,b", "x[[1]]"])
def test_bad_hostlist_is_an_error_naming_the_variable(nodelist: str) -> None:
    with pytest.raises(ConfigError, match="SLURM_JOB_NODELIST"):
        expand_hostlist(nodelist)


def test_one_node_is_plain_accelerate() -> None:
    argv = plan(EIGHT_GPU, TRAIN, {})
    assert argv[:4] == ["accelerate", "launch", "--config_file", EIGHT_GPU]
    assert argv[4:] == ["-m", "modgap.cli", *TRAIN]
    # Inside an allocation it is the same: accelerate starts the node's processes itself.
    assert plan(EIGHT_GPU, TRAIN, {"SLURM_JOB_ID": "7"}, gpus_per_node=8) == argv
    # A config written for several machines with the rule on one node would wait for peers forever.
    with pytest.raises(ConfigError, match=r"num_machines: 2 .*nodes: 1"):
        plan(MULTINODE, TRAIN, {"SLURM_JOB_ID": "7"})


def test_several_nodes_give_one_srun_task_per_node() -> None:
    argv = plan(MULTINODE, TRAIN, {"SLURM_JOB_ID": "7"}, nodes=3, gpus_per_node=8)
    assert argv[0] == "srun" and "--nodes=3" in argv and "--ntasks=3" in argv and "--ntasks-per-node=1" in argv
    assert f"--export=ALL,{NODE_TASK_ENV}=1" in argv and "--gpus-per-node=8" in argv
    # each task re-enters the launcher with the same config and command
    tail = argv[argv.index(sys.executable) :]
    assert tail == [sys.executable, "-m", "modgap.mllm.launch", "--accelerate-config", MULTINODE, "--", *TRAIN]
    # outside SLURM there is nothing to srun into
    with pytest.raises(ConfigError, match="nodes: 3 needs a SLURM allocation"):
        plan(MULTINODE, TRAIN, {}, nodes=3)


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_node_task_gets_its_rank_and_the_allocation_size() -> None:
    # The config says 2 machines x 8 processes; the allocation has 3 nodes: 3 x 8, rank from SLURM_NODEID.
    env = {
        NODE_TASK_ENV: "1",
        "SLURM_NODEID": "2",
        "SLURM_STEP_NODELIST": "gpu[07-09]",
        "SLURM_JOB_NODELIST": "gpu[01-09]",
        "SLURM_JOB_ID": "7",
    }
    argv = plan(MULTINODE, TRAIN, env)
    assert argv[:2] == ["accelerate", "launch"]
    assert _option(argv, "--num_machines") == "3" and _option(argv, "--num_processes") == "24"
    assert _option(argv, "--machine_rank") == "2" and _option(argv, "--main_process_ip") == "gpu07"
    assert _option(argv, "--main_process_port") == "29500"
    with pytest.raises(ConfigError, match="SLURM_NODEID"):
        plan(MULTINODE, TRAIN, {**env, "SLURM_NODEID": "3"})
    with pytest.raises(ConfigError, match="SLURM_NODEID"):
        plan(MULTINODE, TRAIN, {k: v for k, v in env.items() if k != "SLURM_NODEID"})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("num_processes: [1\n", "not valid YAML"),
        ("- a\n", "not a mapping"),
        ("num_processes: 0\n", "num_processes must be a positive integer"),
        ("num_processes: true\n", "num_processes must be a positive integer"),
        ("num_processes: 3\nnum_machines: 2\n", "not a multiple of num_machines"),
        ("num_processes: 2\nmain_process_port: '29500; rm -rf ~'\n", "main_process_port"),
    ],
)
def test_bad_accelerate_config_names_the_key(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "acc.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=f"mllm.accelerate_config: .*{message}"):
        read_accelerate_config(path)


def test_cli_refuses_a_missing_command_separator(tmp_path: Path) -> None:
    from modgap.cli import main

    assert main(["mllm", "launch", "--accelerate-config", MULTINODE]) != 0


# Starts every node task on this machine, as srun would on each node of the allocation: SLURM_NODEID,
# SLURM_PROCID and the --export'ed variables set per task; the exit status is the worst task's.
FAKE_SRUN = """#!/usr/bin/env bash
set -u
nodes=1; exports=""
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes=*) nodes=${1#--nodes=};;
    --export=ALL,*) exports=${1#--export=ALL,};;
    --*) ;;
    *) break;;
  esac
  shift
done
echo "srun $nodes tasks: $*" >> "$SRUN_LOG"
pids=()
for ((i = 0; i < nodes; i++)); do
  env SLURM_NODEID=$i SLURM_PROCID=$i $exports "$@" > "$SRUN_LOG.task$i" 2>&1 &
  pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=$?; done
exit $rc
"""


@pytest.mark.slow  # ~40-60 s: three interpreters import torch/transformers on a shared 2-core CPU
def test_two_node_launch_matches_one_process(tmp_path: Path) -> None:
    import subprocess

    from modgap.mllm.testing import free_port, make_fake_inputs, make_tiny_llm, tiny_config

    llm = make_tiny_llm(tmp_path / "llm")
    data = make_fake_inputs(tmp_path / "data", n_train=32, n_test=8)
    inputs = [
        "--manifest",
        str(data["manifest"]),
        "--embeddings-root",
        str(data["embeddings_root"]),
        "--substitutes",
        str(data["substitutes"]),
    ]

    def config_file(name: str, per_device: int) -> str:
        base = tiny_config(llm, max_steps=3, save_every=100)
        base["stage1"] = {**base["stage1"], "per_device_batch_size": per_device}  # type: ignore[dict-item]
        path = tmp_path / name
        path.write_text(json.dumps(base))
        return str(path)

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text(FAKE_SRUN)
    srun.chmod(srun.stat().st_mode | stat.S_IXUSR)
    accelerate_cfg = tmp_path / "two-nodes.yaml"  # 1 CPU process per node, gloo
    accelerate_cfg.write_text(
        yaml.safe_dump(
            {
                "compute_environment": "LOCAL_MACHINE",
                "distributed_type": "MULTI_GPU",
                "num_processes": 1,
                "num_machines": 1,
                "machine_rank": 0,
                "main_process_port": free_port(),
                "mixed_precision": "no",
                "rdzv_backend": "static",
                "same_network": True,
            }
        )
    )
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "SRUN_LOG": str(tmp_path / "srun.log"),
        "PYTHONPATH": str(ROOT / "src"),
        "SLURM_JOB_ID": "1",
        "SLURM_JOB_NODELIST": "127.0.0.1,127.0.0.1",
    }
    two = tmp_path / "two"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "modgap.cli",
            "mllm",
            "launch",
            "--accelerate-config",
            str(accelerate_cfg),
            "--nodes",
            "2",
            "--",
            "mllm",
            "train",
            "--stage",
            "1",
            "--config",
            config_file("two.json", 2),
            *inputs,
            "--out-dir",
            str(two),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    logs = "".join(p.read_text() for p in sorted(tmp_path.glob("srun.log*")))
    assert run.returncode == 0, run.stderr[-3000:] + logs[-3000:]
    assert "srun 2 tasks" in (tmp_path / "srun.log").read_text()
    assert json.loads((two / "DONE.json").read_text())["processes"] == 2

    one = tmp_path / "one"
    single = subprocess.run(
        [
            sys.executable,
            "-m",
            "modgap.cli",
            "mllm",
            "train",
            "--stage",
            "1",
            "--config",
            config_file("one.json", 4),
            *inputs,
            "--out-dir",
            str(one),
        ],
        env={**env, "SLURM_JOB_ID": ""},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr[-3000:]

    import csv

    def losses(out: Path) -> list[float]:
        with open(out / "loss.csv") as fh:
            return [float(r["loss"]) for r in csv.DictReader(fh)]

    assert losses(two) == pytest.approx(losses(one), rel=1e-4)
