"""Training inputs: manifest + embedding/substitute tables, prompt templates, dataset and collator.

Three templates:
- ``plain`` ([RA] stage 1, Bunny ``preprocess_plain``): visual tokens, then the caption and a newline;
  the question is ignored and the loss covers the caption and the newline.
- ``chat``: the LLM's own chat template; the user turn is ``<image>\\n{question}``, the loss covers the
  assistant's answer up to and including the end-of-turn (eos) token.
- ``llama``: Bunny's Llama-3 chat template ([RA] stage 2, :mod:`modgap.mllm.bunny`): BOS, the Bunny
  system line, ``USER: <image>\n{question} ASSISTANT:``; the loss covers `` {answer}<|end_of_text|>``.

Every input is checked before training starts: a missing file, a NaN row or an id without an
embedding stops the run with an error naming the file (the public code silently drops such samples,
spec §7.2).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from modgap.errors import InvalidEmbeddingsError, ModgapError
from modgap.mllm import bunny
from modgap.validate import check_embeddings

log = logging.getLogger(__name__)

IMAGE_MARKER = "<image>"
IGNORE_INDEX = -100


class MLLMInputError(ModgapError):
    """A training input (manifest, embeddings, substitutes) is missing or inconsistent."""


# ---------------------------------------------------------------------------------------------
# inputs


def load_manifest(path: str | Path, split: str | None = None) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise MLLMInputError(f"manifest {path} does not exist")
    frame = pd.read_parquet(path)
    missing = {"id", "caption", "labels", "split"} - set(frame.columns)
    if missing:
        raise MLLMInputError(f"manifest {path}: missing column(s) {sorted(missing)}")
    frame = frame.assign(id=frame["id"].astype(str))
    if split is not None:
        frame = frame[frame["split"] == split].reset_index(drop=True)
        if frame.empty:
            raise MLLMInputError(f"manifest {path}: no rows in split {split!r}")
    return frame


@dataclass
class EmbeddingTable:
    """Rows of an ``.npy`` matrix addressed by sample id (fails hard on unknown ids)."""

    array: np.ndarray
    ids: list[str]
    path: Path

    def __post_init__(self) -> None:
        self.index = {i: r for r, i in enumerate(self.ids)}

    @property
    def dim(self) -> int:
        return int(self.array.shape[1])

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        missing = [i for i in ids if i not in self.index]
        if missing:
            raise MLLMInputError(f"{self.path}: {len(missing)} id(s) have no embedding, e.g. {missing[:3]}")
        return self.array[[self.index[i] for i in ids]]


def load_table(npy: str | Path, ids_txt: str | Path) -> EmbeddingTable:
    npy, ids_txt = Path(npy), Path(ids_txt)
    for p in (npy, ids_txt):
        if not p.is_file():
            raise MLLMInputError(f"{p} does not exist")
    try:
        array = np.load(npy, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InvalidEmbeddingsError(f"{npy}: unreadable .npy ({exc})") from exc
    check_embeddings(array, str(npy))
    ids = ids_txt.read_text(encoding="utf-8").splitlines()
    if len(ids) != array.shape[0]:
        raise MLLMInputError(f"{npy} has {array.shape[0]} rows but {ids_txt} lists {len(ids)} ids")
    if len(set(ids)) != len(ids):
        raise MLLMInputError(f"{ids_txt}: duplicate ids")
    return EmbeddingTable(array.astype(np.float32, copy=False), ids, npy)


def visual_table(
    kind: str, *, embeddings_root: str | Path, split: str, substitutes: str | Path | None = None
) -> EmbeddingTable:
    """``image``: real image embeddings of ``split``; ``substitute``: an alignment method's
    substitutes (a ``{split}.npy`` inside ``substitutes`` or that file), rows aligned with the
    split's ``text_ids.txt``."""
    split_dir = Path(embeddings_root) / split
    if kind == "image":
        return load_table(split_dir / "image.npy", split_dir / "image_ids.txt")
    if kind == "substitute":
        if substitutes is None:
            raise MLLMInputError("visual input 'substitute' needs --substitutes")
        sub = Path(substitutes)
        npy = sub / f"{split}.npy" if sub.is_dir() or sub.suffix != ".npy" else sub
        return load_table(npy, split_dir / "text_ids.txt")
    raise MLLMInputError(f"visual input must be 'image' or 'substitute', got {kind!r}")


# ---------------------------------------------------------------------------------------------
# templates


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    image_mask: list[bool]


def prompt_text(
    tokenizer: Any, template: str, question: str | None, system_prompt: str | None, with_image: bool = True
) -> str:
    """The prompt string with :data:`IMAGE_MARKER` where the visual tokens go."""
    if template == "plain":
        return IMAGE_MARKER if with_image else ""
    if template == bunny.LLAMA:
        return bunny.prompt_text(tokenizer, question, IMAGE_MARKER, system_prompt, with_image)
    user = f"{IMAGE_MARKER}\n{question}" if with_image else str(question)
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": user})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def answer_text(tokenizer: Any, template: str, question: str | None, answer: str, system_prompt: str | None) -> str:
    """What follows the prompt in a training example (the tokens that carry loss)."""
    if template == "plain":
        return f"{answer}\n"
    if template == bunny.LLAMA:
        return bunny.answer_text(tokenizer, answer)
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages += [{"role": "user", "content": f"{IMAGE_MARKER}\n{question}"}, {"role": "assistant", "content": answer}]
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    prefix = prompt_text(tokenizer, template, question, system_prompt)
    if not full.startswith(prefix):
        raise ModgapError("the chat template renders the prompt differently with and without an answer")
    target = full[len(prefix) :]
    eos = tokenizer.eos_token
    if eos and eos in target:  # stop at the end-of-turn token; the template's trailing newline is not an answer
        target = target[: target.index(eos) + len(eos)]
    return target


def encode_prompt(tokenizer: Any, text: str, num_visual: int) -> tuple[list[int], list[bool]]:
    pieces = text.split(IMAGE_MARKER)
    if len(pieces) > 2:
        raise ModgapError(f"prompt contains {IMAGE_MARKER} more than once")
    ids: list[int] = []
    mask: list[bool] = []
    for k, piece in enumerate(pieces):
        if k:
            ids += [tokenizer.pad_token_id] * num_visual
            mask += [True] * num_visual
        if piece:
            toks = tokenizer(piece, add_special_tokens=False)["input_ids"]
            ids += toks
            mask += [False] * len(toks)
    return ids, mask


def encode_example(
    tokenizer: Any,
    template: str,
    question: str | None,
    answer: str,
    *,
    num_visual: int,
    system_prompt: str | None,
    max_length: int,
) -> Encoded:
    ids, mask = encode_prompt(tokenizer, prompt_text(tokenizer, template, question, system_prompt), num_visual)
    target = tokenizer(answer_text(tokenizer, template, question, answer, system_prompt), add_special_tokens=False)[
        "input_ids"
    ]
    room = max_length - len(ids)
    if room < 1:
        raise ModgapError(f"max_length={max_length} leaves no room for the answer (prompt has {len(ids)} tokens)")
    target = target[:room]  # truncate the answer, never the prompt or the visual tokens
    return Encoded(ids + target, [IGNORE_INDEX] * len(ids) + target, mask + [False] * len(target))


# ---------------------------------------------------------------------------------------------
# dataset + collator


@dataclass
class Example:
    id: str
    question: str | None
    answer: str


class VisualInstructionDataset(torch.utils.data.Dataset):
    """Tokenised examples, each paired with one row of a visual embedding table."""

    def __init__(
        self,
        examples: Sequence[Example],
        table: EmbeddingTable,
        tokenizer: Any,
        *,
        template: str,
        num_visual: int,
        system_prompt: str | None,
        max_length: int,
    ) -> None:
        self.visual = torch.from_numpy(np.ascontiguousarray(table.rows([e.id for e in examples])))
        self.examples = list(examples)
        self.ids = [e.id for e in examples]
        # Tokenised on first use: a short CPU run touches a few hundred of ~10^4 instructions.
        self._encode = lambda e: encode_example(
            tokenizer,
            template,
            e.question,
            e.answer,
            num_visual=num_visual,
            system_prompt=system_prompt,
            max_length=max_length,
        )

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        e = self._encode(self.examples[i])
        return {"input_ids": e.input_ids, "labels": e.labels, "image_mask": e.image_mask, "embeddings": self.visual[i]}


@dataclass
class Collator:
    """Pads right for training (labels with -100); left padding is for generation only."""

    pad_token_id: int

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(b["input_ids"]) for b in batch)
        n = len(batch)
        input_ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
        image_mask = torch.zeros((n, width), dtype=torch.bool)
        attention = torch.zeros((n, width), dtype=torch.long)
        for row, b in enumerate(batch):
            k = len(b["input_ids"])
            input_ids[row, :k] = torch.tensor(b["input_ids"])
            labels[row, :k] = torch.tensor(b["labels"])
            image_mask[row, :k] = torch.tensor(b["image_mask"])
            attention[row, :k] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention,
            "image_mask": image_mask,
            "labels": labels,
            "embeddings": torch.stack([b["embeddings"] for b in batch]),
        }


def caption_examples(manifest: pd.DataFrame, ids: Sequence[str]) -> list[Example]:
    """Stage-1 examples: reconstruct each id's caption (the ids of the visual table, in its order)."""
    captions = dict(zip(manifest["id"], manifest["caption"], strict=True))
    missing = [i for i in ids if i not in captions]
    if missing:
        raise MLLMInputError(f"{len(missing)} embedding id(s) are not in the manifest split, e.g. {missing[:3]}")
    return [Example(i, None, str(captions[i])) for i in ids]
