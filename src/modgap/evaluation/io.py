"""Reading and writing suites and per-sample logs (JSON lines, written atomically)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from modgap.errors import ModgapError
from modgap.evaluation.items import BenchItem
from modgap.io import write_text_atomic


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows))


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise ModgapError(f"{path} does not exist")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ModgapError(f"{path}:{n}: not JSON ({exc.msg})") from exc
    return rows


def read_suite(path: str | os.PathLike[str]) -> list[BenchItem]:
    try:
        return [BenchItem.from_json(row) for row in read_jsonl(path)]
    except (KeyError, TypeError) as exc:
        raise ModgapError(f"{path}: not a benchmark suite ({exc})") from exc
