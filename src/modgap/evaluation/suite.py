"""The embedded mini-benchmark suite, built from the held-out split ([spec] revision-mllm §11.4).

One block of items per registered benchmark task (:mod:`modgap.evaluation.tasks`: captioning,
POPE-style yes/no, MMBench-style circular multiple choice), over images the MLLMs never saw in
training. Prompts use the ``eval`` phrasing set, never the training templates. Every image draws
from its own RNG seeded by ``(seed, crc32(id))``, so growing the suite keeps existing items unchanged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from modgap.errors import ConfigError, ModgapError
from modgap.evaluation.items import BenchItem, LabelSimilarity, label_list
from modgap.evaluation.tasks import get_task, registered_tasks
from modgap.evaluation.tasks.base import SuiteContext
from modgap.evaluation.tasks.pope import NEGATIVE_STRATEGIES

# Keys every task shares; each task adds its own (Task.defaults).
COMMON_DEFAULTS: dict[str, Any] = {"split": "test", "seed": 0, "label_style": "leaf"}

__all__ = [
    "NEGATIVE_STRATEGIES",
    "BenchItem",
    "LabelSimilarity",
    "SuiteLeakError",
    "build_suite",
    "check_no_leak",
    "suite_defaults",
    "suite_summary",
]


class SuiteLeakError(ModgapError):
    """A benchmark image also appears among the training images."""


def suite_defaults() -> dict[str, Any]:
    """Every ``eval.suite`` key with its default: the shared ones, then each registered task's."""
    out = dict(COMMON_DEFAULTS)
    for task in registered_tasks():
        out.update(task.defaults)
    return out


def build_suite(
    manifest: pd.DataFrame,
    *,
    params: Mapping[str, Any] | None = None,
    similarity: LabelSimilarity | None = None,
) -> list[BenchItem]:
    """All benchmark items of the held-out ``split``, task by task in registry order.
    ``similarity(label, candidates)`` scores candidate labels against one label (higher = closer);
    required for adversarial negatives."""
    defaults = suite_defaults()
    p = {**defaults, **(params or {})}
    unknown = sorted(set(p) - set(defaults))
    if unknown:
        raise ConfigError(f"eval.suite: unknown key(s) {unknown}; known: {sorted(defaults)}")
    for task in registered_tasks():
        task.check_params(p, similarity is not None)
    held = manifest[manifest["split"] == p["split"]]
    if held.empty:
        raise ConfigError(f"eval.suite.split: the manifest has no rows in split {p['split']!r}")
    train = manifest[manifest["split"] == "train"]
    images = _images(held, p["label_style"])
    check_no_leak(images, train)
    train_labels = Counter(lab for v in train["labels"] for lab in label_list(v, p["label_style"]))
    vocabulary = sorted(train_labels) or sorted({lab for img in images for lab in img["labels"]})
    popular = sorted(vocabulary, key=lambda lab: (-train_labels[lab], lab))
    order = np.random.default_rng(p["seed"]).permutation(len(images))
    ctx = SuiteContext([images[i] for i in order], vocabulary, popular, p, similarity, dict(train_labels))
    items: list[BenchItem] = []
    for task in registered_tasks():
        items += task.build(ctx)
    return items


def _images(held: pd.DataFrame, style: str) -> list[dict[str, Any]]:
    """One entry per distinct image (by path): its first row's id, every caption as a reference."""
    out: dict[str, dict[str, Any]] = {}
    for row in held.itertuples(index=False):
        key = str(getattr(row, "image_path", row.id))
        entry = out.setdefault(key, {"id": str(row.id), "path": key, "references": [], "labels": []})
        entry["references"].append(str(row.caption))
        entry["labels"] = list(dict.fromkeys(entry["labels"] + label_list(row.labels, style)))
    return list(out.values())


def check_no_leak(images: Sequence[Mapping[str, Any]], train: pd.DataFrame) -> None:
    """Fail if any benchmark image is a training image (same id or same image file)."""
    seen = set(train["id"].astype(str))
    if "image_path" in train:
        seen |= set(train["image_path"].astype(str))
    leaked = [img["id"] for img in images if img["id"] in seen or img["path"] in seen]
    if leaked:
        raise SuiteLeakError(f"{len(leaked)} benchmark image(s) are also training images, e.g. {leaked[:3]}")


def suite_summary(items: Sequence[BenchItem]) -> dict[str, Any]:
    counts = Counter(get_task(i.task).summary_key(i) for i in items)
    return {"items": len(items), "images": len({i.image_id for i in items}), "by_task": dict(sorted(counts.items()))}
