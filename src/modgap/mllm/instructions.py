"""Deterministic templated instructions from manifest rows (any split).

Four tasks ([spec] §11.1 stage-2 data, §11.4 benchmark types): captioning, yes/no object presence
(negatives sampled from labels the item lacks), multiple-choice category with lettered options, and
short answer. Every item draws from its own RNG seeded by ``(seed, crc32(id))``, so an item's
instructions do not change when other items are added or removed (subsets stay consistent).

Two phrasing sets exist, ``train`` and ``eval``, so benchmark prompts are not the memorised
training templates (template hygiene, §11.4).
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from modgap.errors import ConfigError

LETTERS = "ABCDEFGHIJ"
TASKS = ("caption", "yesno", "choice", "short")

PHRASINGS: dict[str, dict[str, list[str]]] = {
    "train": {
        "caption": [
            "Describe the image briefly.",
            "Write a short caption for this picture.",
            "What does this image show? Answer in one sentence.",
        ],
        "yesno": [
            "Is there a {label} in the image? Answer yes or no.",
            "Does this picture contain a {label}? Please answer yes or no.",
        ],
        "choice": ["Which of the following is shown in the image?\n{options}\nAnswer with the option's letter."],
        "short": [
            "What is the main object in the image? Answer with a word or a short phrase.",
            "Name the object shown in the picture in a few words.",
        ],
    },
    "eval": {
        "caption": ["Provide a one-sentence description of this image."],
        "yesno": ["Can you see a {label} in this image? Reply with yes or no."],
        "choice": ["Which option best matches the image?\n{options}\nReply with the letter of the correct option."],
        "short": ["What object is depicted here? Reply with a word or a short phrase."],
    },
}


@dataclass(frozen=True)
class Instruction:
    """One question about one item; ``answer`` is the reference the model is trained/scored on."""

    id: str
    task: str
    question: str
    answer: str
    options: tuple[str, ...] = field(default=())  # choice: option texts in letter order
    label: str | None = None  # yesno/short/choice: the label asked about (negatives: the absent one)


def _rng(seed: int, item_id: str, salt: str = "") -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(f"{item_id}\0{salt}".encode())])


def label_vocabulary(labels: Iterable[Sequence[str]]) -> list[str]:
    """Sorted distinct labels (the candidate pool for negatives and distractors)."""
    return sorted({str(x) for row in labels for x in row})


def label_frequencies(labels: Iterable[Sequence[str]]) -> Counter[str]:
    return Counter(str(x) for row in labels for x in row)


def label_text(label: str, style: str = "leaf") -> str:
    """``leaf``: the last segment of a hierarchical label, words spaced ("people-body/hand-fingers-closed"
    -> "hand fingers closed"); ``raw``: unchanged."""
    if style == "raw":
        return label
    if style != "leaf":
        raise ConfigError(f"label_style must be 'leaf' or 'raw', got {style!r}")
    return " ".join(label.rsplit("/", 1)[-1].replace("_", " ").replace("-", " ").split())


def _labels(value: object, style: str = "raw") -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return list(dict.fromkeys(label_text(str(x), style) for x in value))  # type: ignore[union-attr]


def instructions_for_item(
    item_id: str,
    caption: str,
    labels: Sequence[str],
    vocabulary: Sequence[str],
    *,
    tasks: Sequence[str] = TASKS,
    seed: int = 0,
    phrasing: str = "train",
    choices: int = 4,
    negatives_per_item: int = 1,
    negative_pool: Sequence[str] | None = None,
    frequencies: Mapping[str, int] | None = None,
) -> list[Instruction]:
    """All instructions for one item. ``negative_pool`` (default: the vocabulary) ranks the labels
    negatives come from: pass labels sorted by popularity or by text-embedding similarity for POPE's
    popular/adversarial variants; the first absent ones are taken, otherwise they are sampled.

    ``frequencies`` (label -> count) samples negatives and distractors in proportion to their count
    instead of uniformly. A positive is a label drawn from an image, so its frequency follows the same
    size-biased distribution: negatives then look as common as positives, and "answer yes when the
    label is frequent" (0.79 on train with uniform negatives) carries no information."""
    if phrasing not in PHRASINGS:
        raise ConfigError(f"instructions phrasing must be one of {sorted(PHRASINGS)}, got {phrasing!r}")
    bank = PHRASINGS[phrasing]
    rng = _rng(seed, item_id)
    present = set(labels)
    absent = [v for v in vocabulary if v not in present]
    weights = frequency_weights(absent, frequencies)
    out: list[Instruction] = []
    for task in tasks:
        pick = bank[task][int(rng.integers(len(bank[task])))]
        if task == "caption":
            out.append(Instruction(item_id, task, pick, caption))
        elif not labels:
            continue  # label tasks need at least one label
        elif task == "yesno":
            positive = labels[int(rng.integers(len(labels)))]
            out.append(Instruction(item_id, task, pick.format(label=positive), "Yes", label=positive))
            if negative_pool is not None:
                ranked = [v for v in negative_pool if v not in present][:negatives_per_item]
            else:
                k = min(negatives_per_item, len(absent))
                ranked = [absent[i] for i in rng.choice(len(absent), size=k, replace=False, p=weights)] if k else []
            for neg in ranked:
                phr = bank[task][int(rng.integers(len(bank[task])))]
                out.append(Instruction(item_id, task, phr.format(label=neg), "No", label=neg))
        elif task == "choice":
            if len(absent) < choices - 1:
                continue
            truth = labels[int(rng.integers(len(labels)))]
            distractors = [absent[i] for i in rng.choice(len(absent), size=choices - 1, replace=False, p=weights)]
            options = [truth, *distractors]
            order = rng.permutation(len(options))
            options = [options[i] for i in order]
            letter = LETTERS[options.index(truth)]
            lines = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))
            out.append(Instruction(item_id, task, pick.format(options=lines), letter, tuple(options), truth))
        elif task == "short":
            out.append(Instruction(item_id, task, pick, labels[0], label=labels[0]))
        else:
            raise ConfigError(f"unknown instruction task {task!r}; known: {TASKS}")
    return out


def frequency_weights(absent: Sequence[str], frequencies: Mapping[str, int] | None) -> np.ndarray | None:
    """Sampling probabilities over ``absent`` in proportion to frequency (None: uniform)."""
    if frequencies is None or not absent:
        return None
    counts = np.array([max(int(frequencies.get(v, 0)), 1) for v in absent], dtype=np.float64)
    return counts / counts.sum()


def build_instructions(
    manifest: pd.DataFrame,
    *,
    split: str | None = None,
    tasks: Sequence[str] = TASKS,
    seed: int = 0,
    phrasing: str = "train",
    choices: int = 4,
    negatives_per_item: int = 1,
    vocabulary: Sequence[str] | None = None,
    label_style: str = "leaf",
    negatives: str = "uniform",
) -> list[Instruction]:
    """Instructions for every row of ``manifest`` (optionally only ``split``), in manifest order.

    ``vocabulary`` defaults to the labels of the selected rows, so train and test instructions draw
    distractors only from their own split unless the caller passes a shared vocabulary (in
    ``label_style`` form). Labels are shown as :func:`label_text` gives them. ``negatives``:
    ``uniform`` or ``frequency`` (in proportion to the selected rows' label counts, see
    :func:`instructions_for_item`).
    """
    if negatives not in ("uniform", "frequency"):
        raise ConfigError(f"instructions negatives must be 'uniform' or 'frequency', got {negatives!r}")
    rows = manifest if split is None else manifest[manifest["split"] == split]
    all_labels = [_labels(v, label_style) for v in rows["labels"]]
    vocab = list(vocabulary) if vocabulary is not None else label_vocabulary(all_labels)
    frequencies = label_frequencies(all_labels) if negatives == "frequency" else None
    out: list[Instruction] = []
    for item_id, caption, labels in zip(rows["id"].astype(str), rows["caption"], all_labels, strict=True):
        out.extend(
            instructions_for_item(
                item_id,
                str(caption),
                labels,
                vocab,
                tasks=tasks,
                seed=seed,
                phrasing=phrasing,
                choices=choices,
                negatives_per_item=negatives_per_item,
                frequencies=frequencies,
            )
        )
    return out
