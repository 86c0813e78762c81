"""A small synthetic manifest, and a fake decoder whose answers a test dictates."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

VOCAB = [f"cat{i}/thing{i}" for i in range(12)]


def manifest(n_test: int = 30, n_train: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for split, n in (("train", n_train), ("test", n_test), ("diag", 10)):
        for i in range(n):
            labels = [VOCAB[j] for j in rng.choice(len(VOCAB), size=int(rng.integers(1, 3)), replace=False)]
            rows.append(
                {
                    "id": f"{split}-{i}",
                    "image_path": f"images/{split}-{i}.jpg",
                    "caption": f"a picture of {labels[0].split('/')[-1]} number {i}",
                    "labels": labels,
                    "split": split,
                }
            )
    return pd.DataFrame(rows)


def word_similarity(label: str, candidates: list[str]) -> np.ndarray:
    """A deterministic stand-in for text-embedding similarity: shared trailing digit scores highest."""
    return np.array([float(c[-1] == label[-1]) + 0.01 * (len(c) == len(label)) for c in candidates])


class FakeMLLM:
    """Stands in for LoadedMLLM: ``answer(question, embedding)`` decides each output."""

    template = "chat"

    def __init__(self, answer: Callable[[str, object], str]) -> None:
        self.answer = answer
        self.calls: list[tuple[str, bool]] = []


def fake_generate(mllm: FakeMLLM, embeddings, prompts, **_: object) -> list[str]:
    out = []
    for k, prompt in enumerate(prompts):
        mllm.calls.append((prompt, embeddings is not None))
        out.append(mllm.answer(prompt, None if embeddings is None else embeddings[k]))
    return out
