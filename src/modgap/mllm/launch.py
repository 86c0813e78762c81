"""Start a ``modgap`` command under ``accelerate launch``, on one machine or on every node of a SLURM job.

The workflow's MLLM rules call ``modgap mllm launch --accelerate-config C --nodes N --gpus-per-node G --
mllm train ...`` whenever ``mllm.accelerate_config`` is set (N and G from the rule's ``resources``). With
one node that is plain ``accelerate launch --config_file C -m modgap.cli ...``. With several it becomes one
``srun`` task per node of the job's allocation; each task re-enters this module and runs ``accelerate
launch`` with its own ``--machine_rank`` (``SLURM_NODEID``), N machines and the first node of the step as
the rendezvous address, so one config file serves 1, 2 or N nodes of the same per-node GPU count.

The node count is passed in, not read from the environment: Snakemake's SLURM jobstep executor removes
the allocation's ``SLURM_*`` variables (all but ``SLURM_JOB_ID``) before it runs a rule's command, so the
rule cannot see how many nodes it holds; ``srun`` sets them again inside each task.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from modgap.errors import ConfigError

# Set by the per-node srun tasks, so that a task runs accelerate instead of calling srun again.
NODE_TASK_ENV = "MODGAP_LAUNCH_NODE_TASK"
DEFAULT_PORT = 29500


def read_accelerate_config(path: str | Path) -> dict[str, Any]:
    """The accelerate config's process layout, checked: num_processes and num_machines (positive integers,
    num_processes a multiple of num_machines) and main_process_port."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"mllm.accelerate_config: {path} does not exist")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"mllm.accelerate_config: {path} is not valid YAML ({exc.__class__.__name__})") from exc
    if not isinstance(cfg, dict):
        raise ConfigError(f"mllm.accelerate_config: {path} is not a mapping")
    layout: dict[str, Any] = {}
    for key, default in (("num_processes", 1), ("num_machines", 1), ("main_process_port", DEFAULT_PORT)):
        value = cfg.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"mllm.accelerate_config: {path}: {key} must be a positive integer, got {value!r}")
        layout[key] = value
    if layout["num_processes"] % layout["num_machines"]:
        raise ConfigError(
            f"mllm.accelerate_config: {path}: num_processes ({layout['num_processes']}) is not a "
            f"multiple of num_machines ({layout['num_machines']})"
        )
    return layout


def expand_hostlist(nodelist: str) -> list[str]:
    """SLURM's compressed host list (``gpu[07-09,12],login1``, ``r[1-2]n[01-02]``) as node names, in order.

    The same expansion ``scontrol show hostnames`` does, without needing scontrol or a reachable
    slurmctld on the compute node; zero padding of a range is kept (``[07-09]`` gives 07, 08, 09).
    """
    names: list[str] = []
    for item in _split_top_level(nodelist):
        names.extend(_expand_one(item, nodelist))
    return names


def _split_top_level(nodelist: str) -> list[str]:
    items, depth, current = [], 0, ""
    for char in nodelist:
        depth += (char == "[") - (char == "]")
        if depth < 0 or depth > 1:
            raise ConfigError(f"SLURM_JOB_NODELIST={nodelist!r}: unbalanced or nested brackets")
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    if depth:
        raise ConfigError(f"SLURM_JOB_NODELIST={nodelist!r}: unbalanced brackets")
    items.append(current)
    if any(not item for item in items):
        raise ConfigError(f"SLURM_JOB_NODELIST={nodelist!r}: empty host name")
    return items


def _expand_one(item: str, nodelist: str) -> list[str]:
    if "[" not in item:
        return [item]
    head, rest = item.split("[", 1)
    group, tail = rest.split("]", 1)
    values: list[str] = []
    for part in group.split(","):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()) or (high and int(high) < int(low)):
            raise ConfigError(f"SLURM_JOB_NODELIST={nodelist!r}: bad range {part!r}")
        width = len(low)
        values.extend(str(n).zfill(width) for n in range(int(low), int(high or low) + 1))
    return [f"{head}{value}{suffix}" for value in values for suffix in _expand_one(tail, nodelist)]


def slurm_hostnames(env: Mapping[str, str]) -> list[str]:
    """The step's node names, in SLURM's order (the first is the rendezvous host)."""
    nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or ""
    if not nodelist:
        raise ConfigError("SLURM_JOB_NODELIST is not set: not inside a SLURM allocation")
    return expand_hostlist(nodelist)


def accelerate_argv(
    config_path: str,
    layout: Mapping[str, Any],
    modgap_args: Sequence[str],
    *,
    machines: int | None = None,
    machine_rank: int = 0,
    main_ip: str | None = None,
) -> list[str]:
    """``accelerate launch`` for ``modgap.cli``; with ``machines`` the layout is rescaled to that many nodes of
    the config's per-node process count."""
    argv = ["accelerate", "launch", "--config_file", config_path]
    if machines is not None:
        per_node = layout["num_processes"] // layout["num_machines"]
        argv += [
            "--num_machines",
            str(machines),
            "--num_processes",
            str(per_node * machines),
            "--machine_rank",
            str(machine_rank),
            "--main_process_ip",
            str(main_ip),
            "--main_process_port",
            str(layout["main_process_port"]),
        ]
    return [*argv, "-m", "modgap.cli", *modgap_args]


def plan(
    config_path: str, modgap_args: Sequence[str], env: Mapping[str, str], *, nodes: int = 1, gpus_per_node: int = 0
) -> list[str]:
    """The command this process should run: srun over the nodes, accelerate on one of them, or plain
    accelerate on this machine."""
    layout = read_accelerate_config(config_path)
    if env.get(NODE_TASK_ENV) == "1":
        hosts = slurm_hostnames(env)
        node_id = env.get("SLURM_NODEID", "")
        if not node_id.isdigit() or int(node_id) >= len(hosts):
            raise ConfigError(
                f"SLURM_NODEID={node_id!r} is not a node index of the step's node list ({len(hosts)} "
                "nodes): the node tasks must be started by srun"
            )
        return accelerate_argv(
            config_path, layout, modgap_args, machines=len(hosts), machine_rank=int(node_id), main_ip=hosts[0]
        )
    if nodes < 1 or gpus_per_node < 0:
        raise ConfigError(f"resources: nodes ({nodes}) must be >= 1 and gpu ({gpus_per_node}) >= 0")
    if nodes == 1:
        if layout["num_machines"] > 1:
            raise ConfigError(
                f"mllm.accelerate_config: {config_path} has num_machines: {layout['num_machines']} but "
                "the rule's resources ask for nodes: 1; set resources.rules.<rule>.nodes"
            )
        return accelerate_argv(config_path, layout, modgap_args)
    if not env.get("SLURM_JOB_ID"):
        raise ConfigError(
            f"resources: nodes: {nodes} needs a SLURM allocation (run with --profile "
            "workflow/profiles/slurm-gpu); SLURM_JOB_ID is not set"
        )
    srun = [
        "srun",
        f"--nodes={nodes}",
        f"--ntasks={nodes}",
        "--ntasks-per-node=1",
        "--kill-on-bad-exit=1",
        f"--export=ALL,{NODE_TASK_ENV}=1",
    ]
    if gpus_per_node:
        srun.append(f"--gpus-per-node={gpus_per_node}")
    return [*srun, sys.executable, "-m", "modgap.mllm.launch", "--accelerate-config", config_path, "--", *modgap_args]


def run(
    config_path: str,
    modgap_args: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    nodes: int = 1,
    gpus_per_node: int = 0,
) -> int:
    env = dict(os.environ if env is None else env)
    argv = plan(config_path, modgap_args, env, nodes=nodes, gpus_per_node=gpus_per_node)
    return subprocess.run(argv, env=env, check=False).returncode


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m modgap.mllm.launch", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(
            args.accelerate_config,
            strip_separator(args.modgap_args),
            nodes=args.nodes,
            gpus_per_node=args.gpus_per_node,
        )
    except ConfigError as exc:
        print(f"modgap mllm launch: error: {exc}", file=sys.stderr)
        return 2


def add_arguments(parser: Any) -> None:
    parser.add_argument("--accelerate-config", required=True, help="config/accelerate/*.yaml")
    parser.add_argument("--nodes", type=int, default=1, help="nodes of the SLURM allocation to run on (default 1)")
    parser.add_argument("--gpus-per-node", type=int, default=0, help="GPUs each node task gets (srun --gpus-per-node)")
    parser.add_argument("modgap_args", nargs="...", help="-- then the modgap command, e.g. mllm train ...")


def strip_separator(args: Sequence[str]) -> list[str]:
    args = list(args)
    if not args or args[0] != "--" or len(args) == 1:
        raise ConfigError("expected `-- <modgap command>` after the launcher's options")
    return args[1:]


if __name__ == "__main__":
    sys.exit(main())
