"""One benchmark question about one image, and the per-image randomness every task draws from."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from modgap.mllm.instructions import label_text

# similarity(label, candidates) -> one score per candidate (higher = closer), from an encoder's text side.
LabelSimilarity = Callable[[str, Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class BenchItem:
    """One question about one image. ``variant``: POPE ``positive`` or the negative strategy;
    for multiple choice the rotation index as text. ``group``: items scored together (an image)."""

    uid: str
    task: str
    image_id: str
    question: str
    answer: str
    variant: str = ""
    group: str = ""
    options: tuple[str, ...] = field(default=())
    references: tuple[str, ...] = field(default=())
    labels: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> BenchItem:
        return cls(
            **{
                **row,
                "options": tuple(row["options"]),
                "references": tuple(row["references"]),
                "labels": tuple(row["labels"]),
            }
        )


def image_rng(seed: int, key: str) -> np.random.Generator:
    """An image's own generator, seeded by ``(seed, crc32(key))``: growing the suite keeps old items."""
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def label_list(value: object, style: str) -> list[str]:
    """A manifest row's labels in the suite's label style, deduplicated in order."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return list(dict.fromkeys(label_text(str(x), style) for x in value))  # type: ignore[union-attr]
