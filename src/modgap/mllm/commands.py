"""``modgap mllm …``: ReVision training stages and the paper-tier/accelerate config helpers.

Heavy imports (torch, transformers, accelerate) happen inside the handlers so ``modgap --help``
stays fast. Multi-process/GPU runs go through ``accelerate launch``, on one machine or one task per SLURM
node, via ``modgap mllm launch`` (:mod:`modgap.mllm.launch`)::

    modgap mllm launch --accelerate-config config/accelerate/1gpu.yaml -- mllm train ...
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from modgap.commandline import add_command


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "mllm",
        help="ReVision MLLM training (stage 1 / stage 2)",
        description="ReVision MLLM training: stage 1 trains the projector only (LLM frozen) on text substitutes or "
        "image embeddings, stage 2 is visual instruction tuning; plus the accelerate launcher and a config "
        "printer.",
    )
    sub = parser.add_subparsers(
        dest="mllm_command", required=True, metavar="SUBCOMMAND", help="what to do (see the list below)"
    )

    train = add_command(
        sub,
        "train",
        help="train one stage into --out-dir (resumes; writes DONE.json last)",
        description="Train one ReVision stage into --out-dir. A folder holding checkpoints is resumed from the "
        "last complete one; a folder with DONE.json is already complete and is left as is.",
    )
    train.add_argument(
        "--stage",
        type=int,
        choices=(1, 2),
        required=True,
        help="1: projector only (LLM frozen); 2: visual instruction tuning",
    )
    train.add_argument(
        "--config",
        default="embedded",
        help="JSON/YAML file, inline JSON, or a preset name (embedded, paper-1gpu, paper-8gpu, ci)",
    )
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="override a config key, e.g. --set stage1.max_steps=10 (repeatable)",
    )
    train.add_argument("--manifest", required=True, help="resources/datasets/{ds}/manifest.parquet")
    train.add_argument("--embeddings-root", required=True, help="results/embeddings/{enc}/{ds}")
    train.add_argument(
        "--substitutes",
        default=None,
        help="results/align/{enc}/{ds}/{m}/substitutes (folder with {split}.npy) or a .npy",
    )
    train.add_argument(
        "--visual",
        choices=("substitute", "image"),
        default=None,
        help="visual input (default: substitute for stage 1, image for stage 2)",
    )
    train.add_argument("--init-from", default="none", help="completed stage-1 folder, or 'none'")
    train.add_argument("--out-dir", required=True, help="results/mllm/{enc}/{ds}/{llm}/{m}/stage{1,2}")
    train.set_defaults(func=_train)

    launch = add_command(
        sub,
        "launch",
        help="run a modgap command under accelerate launch (one srun task per node in a multi-node SLURM allocation)",
        description="Run the modgap command after `--` under `accelerate launch --config_file ACCELERATE_CONFIG`; "
        "with --nodes > 1, one srun task per node of the SLURM allocation, each with its own machine rank.",
    )
    from modgap.mllm.launch import add_arguments

    add_arguments(launch)
    launch.set_defaults(func=_launch)

    show = add_command(
        sub,
        "config",
        help="print a preset or config file, resolved with defaults, as JSON",
        description="Load an MLLM training config as `mllm train --config` does and print it, every default "
        "filled in, as JSON.",
    )
    show.add_argument(
        "config",
        nargs="?",
        default="embedded",
        help="a preset name (embedded, paper-1gpu, paper-8gpu, ci), a JSON/YAML file, or inline JSON",
    )
    show.set_defaults(func=_show_config)


def _apply_overrides(data: dict[str, Any], items: list[str]) -> dict[str, Any]:
    from modgap.errors import ConfigError

    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw  # bare strings need no quotes
        node = data
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {p} is not a mapping")
        node[leaf] = value
    return data


def _train(args: argparse.Namespace) -> int:
    from modgap.mllm.config import load_config
    from modgap.mllm.train import train_stage

    cfg = load_config(_apply_overrides(load_config(args.config).to_dict(), args.set))
    summary = train_stage(
        cfg,
        args.stage,
        manifest=args.manifest,
        embeddings_root=args.embeddings_root,
        out_dir=args.out_dir,
        visual=args.visual,
        substitutes=args.substitutes,
        init_from=args.init_from,
    )
    print(json.dumps({k: summary.get(k) for k in ("stage", "steps", "first_loss", "final_loss", "wall_seconds")}))
    return 0


def _launch(args: argparse.Namespace) -> int:
    from modgap.mllm.launch import run, strip_separator

    return run(
        args.accelerate_config, strip_separator(args.modgap_args), nodes=args.nodes, gpus_per_node=args.gpus_per_node
    )


def _show_config(args: argparse.Namespace) -> int:
    from modgap.mllm.config import load_config

    print(json.dumps(load_config(args.config).to_dict(), indent=2, sort_keys=True))
    return 0
