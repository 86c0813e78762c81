"""What the evaluation stage declares for a config: its config check and which tasks each model answers.

Read by ``modgap.config`` (the check) and ``workflow/rules/common.smk`` (the ``--tasks`` of each
``eval_model`` job), so the tasks are taken from the registry (:mod:`modgap.evaluation.tasks`), never
from a list written in the workflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modgap.errors import ConfigError
from modgap.evaluation.suite import suite_defaults
from modgap.evaluation.tasks import generative_tasks, registered_tasks, rule_scored_tasks, task_names

# Which tasks a model answers: a trained MLLM with real images all of them; under a visual control
# (blind, mean, shuffled) and as the base LLM the rule-scored ones (an average and a parse rate); a
# Stage-1-only probe the generative ones (it has learnt captioning only).
MODEL_KINDS = ("mllm_image", "mllm_control", "base", "probe")


def tasks_for(kind: str) -> str:
    """Comma-separated task names for one kind of evaluated model (MODEL_KINDS)."""
    chosen = {
        "mllm_image": registered_tasks,
        "mllm_control": rule_scored_tasks,
        "base": rule_scored_tasks,
        "probe": generative_tasks,
    }
    if kind not in chosen:
        raise ConfigError(f"unknown evaluated-model kind {kind!r}; known: {list(MODEL_KINDS)}")
    return ",".join(t.name for t in chosen[kind]())


# What `modgap eval suite|run` import: reports and claims live in other modules of the package, so
# editing them does not redo the (slow) decoding (the eval rules list these as their code inputs).
RUN_MODULES = ("__init__", "answers", "commands", "io", "items", "runner", "score", "suite", "text_metrics")


def run_sources(root: str | Path = "src/modgap/evaluation") -> list[str]:
    """The source files of the decoding path: RUN_MODULES and the task registry."""
    root = Path(root)
    return [str(root / f"{m}.py") for m in RUN_MODULES] + sorted(str(p) for p in (root / "tasks").glob("*.py"))


def check_config(config: Mapping[str, Any], base: Path | None = None) -> None:
    """eval.suite keys are the shared ones or a registered task's, of their default's type;
    eval.max_new_tokens names registered tasks; the suite's split is embedded and held out."""
    eval_config = config.get("eval") or {}
    eval_split = (eval_config.get("suite") or {}).get("split", "test")
    if eval_split not in config["embed"]["splits"]:
        raise ConfigError(f"eval.suite.split: split '{eval_split}' is not in embed.splits")
    if eval_split == "train":
        raise ConfigError("eval.suite.split: 'train' is what the MLLMs train on; evaluate on a held-out split")
    defaults = suite_defaults()
    for key, value in (eval_config.get("suite") or {}).items():
        if key not in defaults:
            raise ConfigError(f"eval.suite.{key}: unknown key; known: {sorted(defaults)}")
        if not _same_kind(value, defaults[key]):
            raise ConfigError(f"eval.suite.{key}: expected {type(defaults[key]).__name__}, got {value!r}")
    for key in eval_config.get("max_new_tokens") or {}:
        if key not in task_names():
            raise ConfigError(f"eval.max_new_tokens.{key}: not a benchmark task; known: {task_names()}")


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, int):
        return isinstance(value, int)
    return isinstance(value, type(default))
