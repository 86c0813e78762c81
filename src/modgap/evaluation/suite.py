"""The embedded mini-benchmark suite, built from the held-out split ([spec] revision-mllm §11.4).

Three rule-scored benchmarks over images the MLLMs never saw in training:
- captioning (CIDEr-D, BLEU-4 against every human caption of the image, category-mention recall);
- POPE-style yes/no object presence: one positive question per image plus one negative per
  sampling strategy (``random``; ``popular``: the most frequent training label the image lacks;
  ``adversarial``: the absent label nearest the asked positive in the encoder's text-embedding
  space), so each strategy's subset is balanced 50/50;
- MMBench-style multiple choice: the true label plus distractors, asked once per cyclic rotation
  of the options (circular evaluation counts an image right only if every rotation is).

Prompts use the ``eval`` phrasing set, never the training templates. Every image draws from its own
RNG seeded by ``(seed, crc32(id))``, so growing the suite keeps existing items unchanged.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modgap.errors import ConfigError, ModgapError
from modgap.mllm.instructions import LETTERS, PHRASINGS, label_text

TASKS = ("caption", "pope", "choice")
NEGATIVE_STRATEGIES = ("random", "popular", "adversarial")
SUITE_DEFAULTS: dict[str, Any] = {
    "split": "test",
    "seed": 0,
    "caption_items": 150,
    "pope_items": 150,
    "pope_negatives": list(NEGATIVE_STRATEGIES),
    "choice_items": 100,
    "choices": 4,
    "circular": True,
    "label_style": "leaf",
}


class SuiteLeakError(ModgapError):
    """A benchmark image also appears among the training images."""


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
        return cls(**{**row, "options": tuple(row["options"]), "references": tuple(row["references"]),
                      "labels": tuple(row["labels"])})


LabelSimilarity = Callable[[str, Sequence[str]], np.ndarray]


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def _labels(value: object, style: str) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return list(dict.fromkeys(label_text(str(x), style) for x in value))  # type: ignore[union-attr]


def build_suite(
    manifest: pd.DataFrame,
    *,
    params: Mapping[str, Any] | None = None,
    similarity: LabelSimilarity | None = None,
) -> list[BenchItem]:
    """All benchmark items of the held-out ``split``. ``similarity(label, candidates)`` scores
    candidate labels against one label (higher = closer); required for adversarial negatives."""
    p = {**SUITE_DEFAULTS, **(params or {})}
    unknown = sorted(set(p) - set(SUITE_DEFAULTS))
    if unknown:
        raise ConfigError(f"eval.suite: unknown key(s) {unknown}; known: {sorted(SUITE_DEFAULTS)}")
    bad = sorted(set(p["pope_negatives"]) - set(NEGATIVE_STRATEGIES))
    if bad:
        raise ConfigError(f"eval.suite.pope_negatives: unknown strategy {bad}; known: {list(NEGATIVE_STRATEGIES)}")
    if "adversarial" in p["pope_negatives"] and similarity is None:
        raise ConfigError("eval.suite.pope_negatives: 'adversarial' needs label embeddings (an encoder)")
    held = manifest[manifest["split"] == p["split"]]
    if held.empty:
        raise ConfigError(f"eval.suite.split: the manifest has no rows in split {p['split']!r}")
    train = manifest[manifest["split"] == "train"]
    images = _images(held, p["label_style"])
    check_no_leak(images, train)
    train_labels = Counter(lab for v in train["labels"] for lab in _labels(v, p["label_style"]))
    vocabulary = sorted(train_labels) or sorted({lab for img in images for lab in img["labels"]})
    popular = sorted(vocabulary, key=lambda lab: (-train_labels[lab], lab))

    order = np.random.default_rng(p["seed"]).permutation(len(images))
    ranked = [images[i] for i in order]
    labelled = [img for img in ranked if img["labels"]]
    items: list[BenchItem] = []
    items += [_caption(img) for img in ranked[: p["caption_items"]]]
    for img in labelled[: p["pope_items"]]:
        items += _pope(img, vocabulary, popular, p, similarity)
    eligible = [img for img in labelled if len(set(vocabulary) - set(img["labels"])) >= p["choices"] - 1]
    for img in eligible[: p["choice_items"]]:
        items += _choice(img, vocabulary, p)
    return items


def _images(held: pd.DataFrame, style: str) -> list[dict[str, Any]]:
    """One entry per distinct image (by path): its first row's id, every caption as a reference."""
    out: dict[str, dict[str, Any]] = {}
    for row in held.itertuples(index=False):
        key = str(getattr(row, "image_path", row.id))
        entry = out.setdefault(key, {"id": str(row.id), "path": key, "references": [], "labels": []})
        entry["references"].append(str(row.caption))
        entry["labels"] = list(dict.fromkeys(entry["labels"] + _labels(row.labels, style)))
    return list(out.values())


def check_no_leak(images: Sequence[Mapping[str, Any]], train: pd.DataFrame) -> None:
    """Fail if any benchmark image is a training image (same id or same image file)."""
    seen = set(train["id"].astype(str))
    if "image_path" in train:
        seen |= set(train["image_path"].astype(str))
    leaked = [img["id"] for img in images if img["id"] in seen or img["path"] in seen]
    if leaked:
        raise SuiteLeakError(f"{len(leaked)} benchmark image(s) are also training images, e.g. {leaked[:3]}")


def _caption(img: Mapping[str, Any]) -> BenchItem:
    question = PHRASINGS["eval"]["caption"][0]
    return BenchItem(f"caption/{img['id']}", "caption", img["id"], question, img["references"][0],
                     group=img["id"], references=tuple(img["references"]), labels=tuple(img["labels"]))


def _pope(img: Mapping[str, Any], vocabulary: Sequence[str], popular: Sequence[str], p: Mapping[str, Any],
          similarity: LabelSimilarity | None) -> list[BenchItem]:
    rng = _rng(p["seed"], f"pope\0{img['id']}")
    template = PHRASINGS["eval"]["yesno"][0]
    present = set(img["labels"])
    absent = [lab for lab in vocabulary if lab not in present]
    positive = img["labels"][int(rng.integers(len(img["labels"])))]
    random_negative = absent[int(rng.integers(len(absent)))] if absent else None

    def item(variant: str, label: str, answer: str) -> BenchItem:
        return BenchItem(f"pope/{variant}/{img['id']}", "pope", img["id"], template.format(label=label), answer,
                         variant=variant, group=img["id"], labels=(label,))

    out = [item("positive", positive, "Yes")]
    for strategy in p["pope_negatives"]:
        if not absent:
            break
        if strategy == "random":
            negative = random_negative
        elif strategy == "popular":
            negative = next(lab for lab in popular if lab not in present)
        else:
            assert similarity is not None
            negative = absent[int(np.argmax(similarity(positive, absent)))]
        out.append(item(strategy, str(negative), "No"))
    return out


def _choice(img: Mapping[str, Any], vocabulary: Sequence[str], p: Mapping[str, Any]) -> list[BenchItem]:
    rng = _rng(p["seed"], f"choice\0{img['id']}")
    template = PHRASINGS["eval"]["choice"][0]
    present = set(img["labels"])
    absent = [lab for lab in vocabulary if lab not in present]
    truth = img["labels"][int(rng.integers(len(img["labels"])))]
    distractors = [absent[i] for i in rng.choice(len(absent), size=p["choices"] - 1, replace=False)]
    options = [truth, *distractors]
    options = [options[i] for i in rng.permutation(len(options))]
    rotations = range(len(options)) if p["circular"] else range(1)
    out = []
    for r in rotations:
        rotated = options[r:] + options[:r]
        lines = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(rotated))
        out.append(BenchItem(f"choice/{r}/{img['id']}", "choice", img["id"], template.format(options=lines),
                             LETTERS[rotated.index(truth)], variant=str(r), group=img["id"],
                             options=tuple(rotated), labels=(truth,)))
    return out


def suite_summary(items: Sequence[BenchItem]) -> dict[str, Any]:
    counts = Counter(f"{i.task}/{i.variant}" if i.task == "pope" else i.task for i in items)
    return {"items": len(items), "images": len({i.image_id for i in items}), "by_task": dict(sorted(counts.items()))}
