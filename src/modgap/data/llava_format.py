"""LLaVA-format data of the papers' paper tier, read into typed records with no silent drops.

One on-disk format serves three datasets ([spec] revision-mllm §3-5): a JSON list (or JSON lines) of
``{"id", "image" (optional, relative path), "conversations": [{"from": "human"|"gpt", "value"}, ...]}``.

* :func:`load_conversations`: Stage-2 SFT (InternVL-Chat-V1-2-SFT); a record's image is looked up under
  several image roots, in order (the SFT mixes COCO, GQA, ShareGPT4V, ... folders).
* :func:`load_bunny_captions`: the Bunny-pretrain caption file of Stage 1: one human ``<image>`` turn and
  one gpt caption per record. Text-only Stage 1 needs only the caption; images are resolved when roots
  are given.
* :func:`load_text_conversations`: Unicorn-1.2M / Unicorn-Instruction-417K, the same conversations
  without images.

``ids_per_file=True`` makes ids ``<file name>:<id>`` for mixtures whose files number their records
independently; by default an id shared by two files is a duplicate.

The authors' loaders drop records without a ``caption`` key, compare ids as ``str(id)`` and skip what
they cannot find. Here ids are ``str(id)`` too, but a record that is malformed, has a duplicate or
missing id, or names an image no root holds raises :class:`LlavaFormatError` naming the JSON file, the
record id and the roots searched.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from modgap.errors import ModgapError

IMAGE_TOKEN = "<image>"
ROLES = ("human", "gpt")


class LlavaFormatError(ModgapError):
    """A LLaVA-format file or record is malformed, duplicated or points at a missing image."""


@dataclass(frozen=True)
class Turn:
    role: Literal["human", "gpt"]
    value: str


@dataclass(frozen=True)
class Conversation:
    """One SFT record: its turns, and its image resolved to a file (None: a text-only record)."""

    id: str
    turns: tuple[Turn, ...]
    image: Path | None
    source: Path  # the JSON file it came from

    @property
    def has_image_token(self) -> bool:
        return any(IMAGE_TOKEN in t.value for t in self.turns)


@dataclass(frozen=True)
class Caption:
    """One Stage-1 record: the caption (the gpt turn) and its image, when roots were given."""

    id: str
    caption: str
    image_name: str | None  # the record's relative image path as written
    image: Path | None  # resolved under the image roots (None when no roots were given)
    source: Path


def read_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a JSON list or a JSON-lines file (``.jsonl``); errors name the file (and line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LlavaFormatError(f"{path}: cannot read LLaVA-format file: {exc}") from exc
    if path.suffix == ".jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise LlavaFormatError(f"{path}: line {number} is not JSON ({exc})") from exc
    else:
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LlavaFormatError(f"{path}: not JSON ({exc})") from exc
        if not isinstance(records, list):
            raise LlavaFormatError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
    for k, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise LlavaFormatError(f"{path}: record {k} is a {type(rec).__name__}, not an object")
    return records


def load_conversations(
    paths: Sequence[str | os.PathLike[str]],
    image_roots: Sequence[str | os.PathLike[str]],
    *,
    ids_per_file: bool = False,
) -> list[Conversation]:
    """SFT conversations from every file, images resolved under ``image_roots`` (first root that has it)."""
    roots = [Path(r) for r in image_roots]
    out = []
    for path, rec, rid in _records(paths, ids_per_file):
        turns = _turns(path, rec, rid)
        image = None
        if rec.get("image") is not None:
            image = resolve_image(path, rid, _image_name(path, rec, rid), roots)
            _check_image_token(path, rid, turns)
        out.append(Conversation(rid, turns, image, Path(path)))
    return out


def load_text_conversations(
    paths: Sequence[str | os.PathLike[str]], *, ids_per_file: bool = False
) -> list[Conversation]:
    """Text-only conversations (Unicorn): a record that names an image is an error, not ignored."""
    out = []
    for path, rec, rid in _records(paths, ids_per_file):
        if rec.get("image") is not None:
            raise LlavaFormatError(
                f"{path}: record {rid!r} names image {rec['image']!r}, but this dataset is read as text-only"
            )
        out.append(Conversation(rid, _turns(path, rec, rid), None, Path(path)))
    return out


def load_bunny_captions(
    paths: Sequence[str | os.PathLike[str]],
    image_roots: Sequence[str | os.PathLike[str]] | None = None,
    *,
    ids_per_file: bool = False,
) -> list[Caption]:
    """Stage-1 captions: each record is exactly one human ``<image>`` turn and one gpt caption."""
    roots = [Path(r) for r in image_roots] if image_roots else None
    out = []
    for path, rec, rid in _records(paths, ids_per_file):
        turns = _turns(path, rec, rid)
        if len(turns) != 2 or turns[0].value.replace(IMAGE_TOKEN, "", 1).strip() or IMAGE_TOKEN not in turns[0].value:
            raise LlavaFormatError(
                f"{path}: record {rid!r} is not a caption record (one human '{IMAGE_TOKEN}' turn, one gpt caption)"
            )
        caption = turns[1].value.strip()
        if not caption:
            raise LlavaFormatError(f"{path}: record {rid!r} has an empty caption")
        name = _image_name(path, rec, rid) if rec.get("image") is not None else None
        if roots is not None and name is None:
            raise LlavaFormatError(f"{path}: record {rid!r} has no image, and image roots were given")
        image = resolve_image(path, rid, name, roots) if roots is not None and name is not None else None
        out.append(Caption(rid, caption, name, image, Path(path)))
    return out


def resolve_image(path: str | os.PathLike[str], rid: str, name: str, roots: Sequence[Path]) -> Path:
    """The first ``root / name`` that is a file; else an error naming the file, the record and the roots."""
    if not roots:
        raise LlavaFormatError(f"{path}: record {rid!r} names image {name!r}, but no image roots are configured")
    for root in roots:
        candidate = root / name
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(r) for r in roots)
    raise LlavaFormatError(f"{path}: record {rid!r}: image {name!r} is in none of the image roots ({searched})")


def _records(
    paths: Iterable[str | os.PathLike[str]], ids_per_file: bool = False
) -> Iterable[tuple[Path, dict[str, Any], str]]:
    """(file, record, str(id)) over every file; ids must be present and unique across all files.

    ``ids_per_file``: ids are ``<file name>:<id>``, for mixtures whose files each number from 0 (the
    InternVL SFT's per-source files); ids must then be unique within each file."""
    seen: dict[str, Path] = {}
    for path in map(Path, paths):
        for k, rec in enumerate(read_records(path)):
            raw = rec.get("id")
            if raw is None or (isinstance(raw, str) and not raw.strip()) or isinstance(raw, bool | dict | list):
                raise LlavaFormatError(f"{path}: record {k} has no usable 'id' (got {raw!r})")
            rid = f"{path.name}:{raw}" if ids_per_file else str(raw)  # the authors compare ids as str(id)
            if rid in seen:
                where = "earlier in this file" if seen[rid] == path else f"also in {seen[rid]}"
                raise LlavaFormatError(f"{path}: record {k}: duplicate id {rid!r} ({where})")
            seen[rid] = path
            yield path, rec, rid


def _turns(path: Path, rec: dict[str, Any], rid: str) -> tuple[Turn, ...]:
    conv = rec.get("conversations")
    if not isinstance(conv, list) or not conv:
        raise LlavaFormatError(f"{path}: record {rid!r}: 'conversations' must be a non-empty list")
    turns = []
    for k, turn in enumerate(conv):
        role = turn.get("from") if isinstance(turn, dict) else None
        value = turn.get("value") if isinstance(turn, dict) else None
        if role != ROLES[k % 2] or not isinstance(value, str):
            raise LlavaFormatError(
                f"{path}: record {rid!r}: turn {k} must be {{'from': {ROLES[k % 2]!r}, 'value': <text>}} "
                f"(turns alternate human/gpt, starting with human); got {turn!r}"[:300]
            )
        turns.append(Turn(role, value))
    if turns[-1].role != "gpt":
        raise LlavaFormatError(f"{path}: record {rid!r}: the last turn is not a gpt answer")
    return tuple(turns)


def _image_name(path: Path, rec: dict[str, Any], rid: str) -> str:
    name = rec["image"]
    if not isinstance(name, str) or not name.strip():
        # the model reads one image embedding per sample: multi-image records are refused, not truncated
        raise LlavaFormatError(f"{path}: record {rid!r}: 'image' must be one relative path, got {name!r}")
    return name


def _check_image_token(path: Path, rid: str, turns: tuple[Turn, ...]) -> None:
    count = sum(t.value.count(IMAGE_TOKEN) for t in turns)
    if count > 1 or any(IMAGE_TOKEN in t.value for t in turns if t.role == "gpt"):
        raise LlavaFormatError(f"{path}: record {rid!r}: {count} '{IMAGE_TOKEN}' tokens; at most one, in a human turn")
