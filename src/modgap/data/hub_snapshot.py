"""Paper-tier data files from a Hugging Face Hub dataset at a pinned commit, each checked by sha256.

A snapshot is configured as (errors name ``<where>.<key>``)::

    repo_id: OpenGVLab/InternVL-Chat-V1-2-SFT-Data
    revision: <40-hex commit>           # a branch or tag is refused: the files could change under it
    files:                              # repo-relative path -> sha256; only these are downloaded
      opensource/sharegpt4v_instruct_gpt4-vision_cap100k.jsonl: <64-hex>

:func:`fetch_snapshot` runs ``huggingface_hub.snapshot_download(repo_type="dataset",
allow_patterns=<the named files>)`` and then verifies every named file; a missing or altered file raises
:class:`~modgap.errors.ChecksumError` naming the repository, the commit and the file. ``HF_HUB_OFFLINE=1``
(or ``local_files_only``) serves the snapshot from the HF cache without the network.

The existing ``hf`` dataset source (:func:`modgap.data.sources.fetch_hf`) only warns on a branch and
verifies nothing; this module is the paper tier's stricter path and is not wired into the default rules.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modgap.errors import ChecksumError, ConfigError, DownloadError
from modgap.io import sha256_file

_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_REPO = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
KEYS = ("repo_id", "revision", "files")


@dataclass(frozen=True)
class HubSnapshot:
    repo_id: str
    revision: str
    files: dict[str, str]  # repo-relative path -> sha256

    @property
    def pin(self) -> str:
        return f"{self.repo_id}@{self.revision}"


def parse_snapshot(cfg: Mapping[str, Any], where: str) -> HubSnapshot:
    """Validate a snapshot config; every error names ``where.<key>``."""
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{where}: expected a mapping with keys {list(KEYS)}")
    unknown = sorted(set(cfg) - set(KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {list(KEYS)}")
    repo = cfg.get("repo_id")
    if not isinstance(repo, str) or not _REPO.fullmatch(repo):
        raise ConfigError(f"{where}.repo_id: expected '<owner>/<name>', got {repo!r}")
    revision = cfg.get("revision")
    if not isinstance(revision, str) or not _COMMIT.fullmatch(revision):
        raise ConfigError(f"{where}.revision: {revision!r} is not a 40-hex commit (pin revisions, not branches)")
    files = cfg.get("files")
    if not isinstance(files, Mapping) or not files:
        raise ConfigError(f"{where}.files: expected a non-empty mapping of repo path -> sha256")
    for name, digest in files.items():
        if not isinstance(name, str) or not name or name.startswith("/") or ".." in Path(name).parts:
            raise ConfigError(f"{where}.files: {name!r} is not a relative path inside the repository")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise ConfigError(f"{where}.files.{name}: {digest!r} is not a 64-hex sha256")
    return HubSnapshot(repo, revision, dict(files))


def fetch_snapshot(
    snapshot: HubSnapshot,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    local_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    endpoint: str | None = None,
) -> Path:
    """Download the named files at the pinned commit (or find them in the cache); verify; return the folder."""
    import huggingface_hub  # only the paper tier's data fetch needs it

    try:
        folder = huggingface_hub.snapshot_download(
            snapshot.repo_id,
            repo_type="dataset",
            revision=snapshot.revision,
            allow_patterns=sorted(snapshot.files),
            cache_dir=cache_dir,
            local_dir=local_dir,
            local_files_only=local_files_only,
            endpoint=endpoint,
        )
    except Exception as exc:  # the hub raises many types (HTTP, offline, not found): name the pin
        reason = f"{type(exc).__name__}: {exc}"
        raise DownloadError(f"hf dataset {snapshot.pin}: snapshot download failed: {reason}") from exc
    verify_snapshot(snapshot, Path(folder))
    return Path(folder)


def verify_snapshot(snapshot: HubSnapshot, folder: Path) -> None:
    """Every named file exists under ``folder`` with its configured sha256 (all problems in one error)."""
    bad = []
    for name, expected in sorted(snapshot.files.items()):
        path = folder / name
        if not path.is_file():
            bad.append(f"{name} (missing)")
        elif (actual := sha256_file(path)) != expected:
            bad.append(f"{name} (sha256 {actual}, config expects {expected})")
    if bad:
        problems = "; ".join(bad)
        raise ChecksumError(f"hf dataset {snapshot.pin} in {folder}: {len(bad)} file(s) fail verification: {problems}")
