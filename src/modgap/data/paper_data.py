"""One paper-tier data source: where its LLaVA-format files come from and how they are read.

Config (a mapping; errors name ``<where>.<key>``)::

    format: conversations        # bunny_captions (Stage 1) | conversations (Stage-2 SFT) | text_conversations (Unicorn)
    hub: {repo_id: ..., revision: <40-hex>, files: {<path>: <sha256>}}   # modgap.data.hub_snapshot
    image_roots: [<folder>, ...]  # conversations (required when records name images); bunny_captions (optional)
    ids_per_file: false           # true: ids are "<file name>:<id>" (files that each number from 0)

The JSON files read are the ``hub.files`` entries ending in ``.json`` / ``.jsonl``, in sorted order.
Not wired into the default pipeline's rules or config schema; see README "Reproduce a paper table".
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modgap.data.hub_snapshot import HubSnapshot, fetch_snapshot, parse_snapshot
from modgap.data.llava_format import (
    Caption,
    Conversation,
    load_bunny_captions,
    load_conversations,
    load_text_conversations,
)
from modgap.errors import ConfigError

FORMATS = ("bunny_captions", "conversations", "text_conversations")
KEYS = ("format", "hub", "image_roots", "ids_per_file")


@dataclass(frozen=True)
class PaperDataSource:
    format: str
    snapshot: HubSnapshot
    image_roots: tuple[Path, ...]
    ids_per_file: bool = False

    @property
    def json_files(self) -> list[str]:
        return sorted(n for n in self.snapshot.files if n.endswith((".json", ".jsonl")))


def parse_source(cfg: Mapping[str, Any], where: str, base: str | os.PathLike[str] = ".") -> PaperDataSource:
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{where}: expected a mapping with keys {list(KEYS)}")
    unknown = sorted(set(cfg) - set(KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {list(KEYS)}")
    fmt = cfg.get("format")
    if fmt not in FORMATS:
        raise ConfigError(f"{where}.format: {fmt!r} is not one of {list(FORMATS)}")
    snapshot = parse_snapshot(cfg.get("hub"), f"{where}.hub")
    roots = cfg.get("image_roots") or []
    if not isinstance(roots, list) or not all(isinstance(r, str) and r for r in roots):
        raise ConfigError(f"{where}.image_roots: expected a list of folders, got {roots!r}")
    if fmt == "text_conversations" and roots:
        raise ConfigError(f"{where}.image_roots: format 'text_conversations' reads no images")
    ids_per_file = cfg.get("ids_per_file", False)
    if not isinstance(ids_per_file, bool):
        raise ConfigError(f"{where}.ids_per_file: expected true or false, got {ids_per_file!r}")
    source = PaperDataSource(fmt, snapshot, tuple(Path(base) / r for r in roots), ids_per_file)
    if not source.json_files:
        raise ConfigError(f"{where}.hub.files: no .json or .jsonl file to read")
    return source


def load_source(
    source: PaperDataSource,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    endpoint: str | None = None,
) -> list[Caption] | list[Conversation]:
    """Fetch and verify the snapshot, then read its JSON files in the source's format."""
    folder = fetch_snapshot(source.snapshot, cache_dir=cache_dir, local_files_only=local_files_only, endpoint=endpoint)
    paths = [folder / n for n in source.json_files]
    if source.format == "bunny_captions":
        return load_bunny_captions(paths, source.image_roots or None, ids_per_file=source.ids_per_file)
    if source.format == "conversations":
        return load_conversations(paths, source.image_roots, ids_per_file=source.ids_per_file)
    return load_text_conversations(paths, ids_per_file=source.ids_per_file)


def summarize(source: PaperDataSource, records: list[Caption] | list[Conversation]) -> dict[str, Any]:
    """Counts a researcher checks before training: records per file, with and without an image."""
    per_file: dict[str, int] = {}
    for rec in records:
        per_file[rec.source.name] = per_file.get(rec.source.name, 0) + 1
    return {
        "format": source.format,
        "pin": source.snapshot.pin,
        "records": len(records),
        "with_image": sum(rec.image is not None for rec in records),
        "per_file": per_file,
    }
