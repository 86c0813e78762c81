"""Local lmms-eval tasks built from the held-out split: no network, no Hub dataset.

:func:`write_local_task` turns the embedded suite's POPE-style yes/no items and MMBench-style
multiple-choice items (:func:`modgap.evaluation.suite.build_suite`) into jsonl files plus task YAMLs
that lmms-eval loads with ``--include_path``::

    write_local_task("resources/datasets/embedded/manifest.parquet", "results/lmms_tasks/embedded")
    lmms-eval --model modgap --model_args stage_dir=...,encoder=...,pretrained=... \\
        --tasks modgap_local --include_path results/lmms_tasks/embedded --log_samples --seed 0

Task names: ``modgap_pope_local``, ``modgap_choice_local`` and the group ``modgap_local`` (both).
The YAML templates live next to this file; their hooks are in :mod:`modgap.evaluation.lmms_tasks.utils`.
Nothing here imports lmms-eval, so the task folder can be written where lmms-eval is not installed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from modgap.errors import ConfigError, ModgapError
from modgap.io import sha256_file, write_json_atomic, write_text_atomic

TASKS = {"pope": "modgap_pope_local", "choice": "modgap_choice_local"}
GROUP = "modgap_local"
# Adversarial negatives need label embeddings from an encoder; the local task stays encoder-free.
LOCAL_SUITE_DEFAULTS: dict[str, Any] = {"pope_negatives": ["random", "popular"], "caption_items": 0}


def _template(name: str) -> str:
    return resources.files(__package__).joinpath(f"{name}.yaml").read_text(encoding="utf-8")


def _fill(template: str, data_dir: Path) -> str:
    body = "".join(line for line in template.splitlines(keepends=True) if not line.startswith("# Template:"))
    # A JSON string is a valid double-quoted YAML scalar: safe for any character in the path.
    body = re.sub(r"__DATA_DIR__/(\S+)", lambda m: json.dumps(f"{data_dir.as_posix()}/{m.group(1)}"), body)
    return f"# Written by modgap.evaluation.lmms_tasks.write_local_task from its template; do not edit.\n{body}"


def _write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def _resolve_images(manifest: Any, items: Sequence[Any], base: Path) -> dict[str, str]:
    """Absolute path of every benchmark image (relative manifest paths are under ``base``), checked to exist."""
    paths = {str(i): str(p) for i, p in zip(manifest["id"], manifest["image_path"], strict=True)}
    resolved: dict[str, str] = {}
    for image_id in sorted({i.image_id for i in items}):
        path = Path(paths[image_id])
        path = (path if path.is_absolute() else base / path).resolve()
        if not path.is_file():
            raise ModgapError(f"image {path} of benchmark item {image_id} does not exist (root={base})")
        resolved[image_id] = str(path)
    return resolved


def _row(item: Any, image_path: str) -> dict[str, Any]:
    """One jsonl row of a local lmms-eval task."""
    return {
        "uid": item.uid,
        "image_id": item.image_id,
        "image_path": image_path,
        "question": item.question,
        "answer": item.answer,
        "variant": item.variant,
        "group": item.group,
        "options": list(item.options),
        "label": item.labels[0] if item.labels else "",
    }


def write_local_task(
    manifest_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    params: Mapping[str, Any] | None = None,
    *,
    root: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Write ``out_dir/{data/*.jsonl, *.yaml, task.json}`` for the suite of ``manifest_path``.

    ``params``: ``eval.suite`` keys (:func:`modgap.evaluation.suite.suite_defaults`), merged over
    :data:`LOCAL_SUITE_DEFAULTS`. ``root``: what relative ``image_path`` values are relative to
    (default: the current directory, the project root in the pipeline). Image paths are written
    absolute, so the task folder is tied to this checkout. Returns the summary also written to task.json.
    """
    import pandas as pd

    from modgap.evaluation.suite import build_suite, suite_summary

    manifest_path = Path(manifest_path)
    if not manifest_path.is_file():
        raise ConfigError(f"manifest {manifest_path} does not exist")
    manifest = pd.read_parquet(manifest_path)
    manifest = manifest.assign(id=manifest["id"].astype(str))
    if "image_path" not in manifest:
        raise ConfigError(f"manifest {manifest_path}: no image_path column; lmms-eval tasks need the images")
    suite_params = {**LOCAL_SUITE_DEFAULTS, **(params or {})}
    items = [i for i in build_suite(manifest, params=suite_params) if i.task in TASKS]

    resolved = _resolve_images(manifest, items, Path(root) if root is not None else Path.cwd())

    out = Path(out_dir)
    data_dir = (out / "data").resolve()
    written: dict[str, Any] = {}
    for kind, task_name in TASKS.items():
        rows = [_row(i, resolved[i.image_id]) for i in items if i.task == kind]
        yaml_path = out / f"{task_name}.yaml"
        if not rows:  # lmms-eval cannot load an empty split: leave the task out (and any stale copy)
            yaml_path.unlink(missing_ok=True)
            continue
        _write_jsonl(data_dir / f"{kind}.jsonl", rows)
        write_text_atomic(yaml_path, _fill(_template(task_name), data_dir))
        written[task_name] = {
            "items": len(rows),
            "images": len({r["image_id"] for r in rows}),
            "data": str(data_dir / f"{kind}.jsonl"),
            "data_sha256": sha256_file(data_dir / f"{kind}.jsonl"),
        }
    if not written:
        raise ConfigError("write_local_task: the suite parameters produced no POPE or multiple-choice items")
    group = _template(GROUP)
    for task_name in TASKS.values():
        if task_name not in written:
            group = group.replace(f"  - {task_name}\n", "")
    write_text_atomic(out / f"{GROUP}.yaml", group)
    summary = {
        "manifest": str(manifest_path),
        "manifest_sha256": sha256_file(manifest_path),
        "suite_params": suite_params,
        "suite": suite_summary(items),
        "tasks": written,
        "group": GROUP,
    }
    write_json_atomic(out / "task.json", summary)
    return summary
