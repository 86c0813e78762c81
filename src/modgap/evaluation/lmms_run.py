"""Run lmms-eval on one trained stage folder (the paper tier's 11-benchmark path, [spec] §8.2) and
write its results and per-sample logs to fixed paths the workflow can track.

lmms-eval writes timestamped folders of its own; here the whole result (scores, task configs,
harness versions) goes to ``{prefix}.json`` and every logged sample to ``{prefix}.samples.jsonl``,
both atomically, so a crashed run leaves nothing that looks complete.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from modgap.errors import ConfigError
from modgap.evaluation.io import write_jsonl
from modgap.io import write_text_atomic


def run_lmms_eval(
    *,
    stage_dir: str,
    encoder: str,
    pretrained: str | None,
    tasks: Sequence[str],
    prefix: str,
    include_path: str | None = None,
    limit: int | None = None,
    batch_size: int = 16,
    device: str = "cpu",
    blind: bool = False,
    seed: int = 0,
    backend: str = "open_clip",
    backend_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    try:
        from lmms_eval.evaluator import simple_evaluate
        from lmms_eval.tasks import TaskManager

        from modgap.evaluation.lmms_plugin import lmms_eval_version
    except ImportError as exc:
        raise ConfigError(f"eval.lmms_eval needs lmms-eval: pip install -e '.[eval]' ({exc})") from exc
    if not tasks:
        raise ConfigError("eval.lmms_eval.tasks: no tasks given")
    model_args = f"stage_dir={stage_dir},encoder={encoder},pretrained={pretrained or ''},blind={str(blind).lower()}"
    if backend != "open_clip" or backend_options:  # open_clip runs keep the model_args they always had
        from modgap.evaluation.lmms_plugin import encode_model_arg

        model_args += f",backend={backend},backend_options={encode_model_arg(backend_options or {})}"
    manager = TaskManager(include_path=include_path) if include_path else TaskManager()
    out = simple_evaluate(
        model="modgap",
        model_args=model_args,
        tasks=list(tasks),
        batch_size=batch_size,
        device=device,
        limit=limit,
        task_manager=manager,
        log_samples=True,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
    )
    if out is None:  # non-zero ranks of a distributed run return nothing
        return {}
    samples = out.pop("samples", {}) or {}
    write_jsonl(
        f"{prefix}.samples.jsonl", ({"task": task, **_plain(s)} for task, rows in samples.items() for s in rows)
    )
    record = {
        "harness": {"lmms_eval": lmms_eval_version()},
        "tasks": list(tasks),
        "limit": limit,
        "blind": blind,
        "results": _plain(out.get("results", {})),
        "config": _plain(out.get("config", {})),
    }
    write_text_atomic(f"{prefix}.json", json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return record["results"]


def _plain(obj: Any) -> Any:
    """JSON-safe copy: numpy scalars become numbers (so the report can tabulate them), other odd
    objects in lmms-eval's config become their text."""
    return json.loads(json.dumps(obj, default=_to_json))


def _to_json(value: Any) -> Any:
    return value.item() if hasattr(value, "item") and callable(value.item) else str(value)
