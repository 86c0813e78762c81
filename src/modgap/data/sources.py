"""Fetch a dataset's raw files according to its config's ``source``; return the dataset root.

- ``http``: download every archive (resumable, checksummed; see :mod:`modgap.data.download`) into
  ``<root>/downloads/`` and unpack archives into ``<root>/<extract_to>``.
- ``hf``: ``huggingface_hub.snapshot_download`` of a dataset repository at a pinned revision.
- ``folder``: an existing local folder (checked, nothing copied).
- ``embedded``: the committed copy; every file's sha256 is checked against its manifest.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from modgap.data.download import download_file, extract_archive, is_archive_name
from modgap.data.embedded_builder import MANIFEST_COLUMNS
from modgap.errors import ChecksumError, ConfigError, DownloadError
from modgap.io import clean_stale_temps, sha256_file

log = logging.getLogger(__name__)

EMBEDDED_COLUMNS = MANIFEST_COLUMNS  # one definition, shared with the builder
_COMMIT = re.compile(r"[0-9a-f]{40}")

__all__ = [
    "EMBEDDED_COLUMNS",
    "download_file",
    "extract_archive",
    "fetch",
    "fetch_folder",
    "fetch_hf",
    "fetch_http",
    "read_embedded_manifest",
    "verify_embedded",
]


def fetch(
    cfg: Mapping[str, Any], default_root: str | os.PathLike[str], *, progress: bool = True, refetch: bool = False
) -> Path:
    """Fetch/verify the files of a normalised dataset config; return the folder the adapter reads.

    ``default_root`` is the download folder used by http/hf sources without a ``path``.
    """
    source = cfg["source"]
    root = Path(cfg.get("path") or default_root)
    if source == "http":
        return fetch_http(cfg["archives"], root, progress=progress, refetch=refetch)
    if source == "hf":
        hf = cfg["hf"]
        return fetch_hf(hf["repo_id"], root, revision=hf["revision"], allow_patterns=hf.get("allow_patterns"))
    if source == "folder":
        return fetch_folder(root)
    if source == "embedded":
        manifest = cfg.get("embedded", {}).get("manifest", "manifest.csv")
        verify_embedded(root / manifest, progress=progress)
        return root
    raise ConfigError(f"dataset config: key 'source': unknown source {source!r}")


def fetch_http(archives: list[Mapping[str, Any]], root: Path, *, progress: bool = True, refetch: bool = False) -> Path:
    """Download and unpack every entry of ``archives`` under ``root`` (``refetch``: download again)."""
    clean_stale_temps(root / "downloads")  # verification stamps half-written by a killed run
    for entry in archives:
        target = download_file(
            entry["url"],
            root / "downloads" / entry["filename"],
            sha256=entry.get("sha256"),
            md5=entry.get("md5"),
            progress=progress,
            refetch=refetch,
        )
        extract = entry.get("extract", "auto")
        if extract is True or (extract == "auto" and is_archive_name(entry["filename"])):
            # The extraction marker is keyed by the configured (already verified) checksum.
            key = entry.get("sha256") or f"md5:{entry['md5']}"
            extract_archive(target, root / entry.get("extract_to", "."), archive_sha256=key)
    return root


def fetch_hf(repo_id: str, root: Path, *, revision: str, allow_patterns: list[str] | None = None) -> Path:
    """Download a Hugging Face Hub dataset snapshot into ``root`` (honours ``HF_HUB_OFFLINE``)."""
    import huggingface_hub  # imported lazily: only the hf source needs it

    if not _COMMIT.fullmatch(revision):
        log.warning(
            "hf dataset %s: revision %r is not a commit hash; the snapshot may change over time", repo_id, revision
        )
    try:
        path = huggingface_hub.snapshot_download(
            repo_id, repo_type="dataset", revision=revision, allow_patterns=allow_patterns, local_dir=root
        )
    except Exception as exc:  # the hub raises many types (HTTP, offline, not found); name the repo
        raise DownloadError(
            f"hf dataset {repo_id}@{revision}: snapshot download into {root} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return Path(path)


def fetch_folder(root: Path) -> Path:
    if not root.is_dir():
        raise ConfigError(f"dataset config: key 'path': folder {root} does not exist")
    return root


def read_embedded_manifest(manifest: Path) -> pd.DataFrame:
    """Read the committed embedded manifest (all columns as strings, empty labels as '')."""
    if not manifest.is_file():
        raise ChecksumError(f"embedded dataset manifest {manifest} is missing")
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    missing = [c for c in EMBEDDED_COLUMNS if c not in table.columns]
    if missing:
        raise ChecksumError(f"{manifest}: missing column(s) {', '.join(missing)}")
    if table.empty:
        raise ChecksumError(f"{manifest}: no rows")
    return table


def verify_embedded(manifest: str | os.PathLike[str], *, progress: bool = True) -> pd.DataFrame:
    """Check the sha256 of every file listed in ``manifest``; return the manifest table.

    Raises :class:`ChecksumError` naming the missing or altered file(s).
    """
    from tqdm import tqdm

    manifest = Path(manifest)
    table = read_embedded_manifest(manifest)
    base = manifest.parent
    bad: list[str] = []
    for file, expected in tqdm(
        zip(table["file"], table["sha256"], strict=True),
        total=len(table),
        desc="verify embedded",
        unit="file",
        disable=not progress,
        leave=False,
    ):
        path = base / file
        if not path.is_file():
            bad.append(f"{path} (missing)")
        elif (actual := sha256_file(path)) != expected:
            bad.append(f"{path} (sha256 {actual}, manifest says {expected})")
    if bad:
        shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ChecksumError(f"embedded dataset {manifest}: {len(bad)} file(s) fail verification: {shown}")
    return table
