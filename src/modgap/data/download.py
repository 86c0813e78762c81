"""Resumable, checksummed HTTP downloads and atomic archive extraction.

A download streams into ``<file>.part``; an interrupted run leaves the ``.part`` behind and the next
attempt (a retry, or a rerun of the command) asks for the rest with an HTTP ``Range`` request. Only
a file whose checksum matches is renamed to its final name, so a file under the final name is always
complete. A checksum mismatch deletes the ``.part`` (its bytes cannot be trusted for resuming).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import requests
import urllib3
from tqdm import tqdm

from modgap.errors import ChecksumError, ConfigError, DownloadError
from modgap.io import read_json, write_json_atomic

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
EXTRACT_MARKERS = ".modgap-extracted"  # folder (under the extraction root) of per-archive markers
RETRY_BACKOFF_S = 2.0  # seconds x attempt number between retries (module level so tests can zero it)
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class _Incomplete(Exception):
    """The server closed the body before sending everything it announced (retryable)."""


def file_digests(path: Path, chunk_bytes: int = 1 << 20) -> tuple[str, str]:
    """(sha256, md5) of a file in one pass."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def _checksum_problem(path: Path, sha256: str | None, md5: str | None) -> tuple[str | None, tuple[str, str]]:
    """(None or a description of the mismatch, (sha256, md5) of ``path``)."""
    digests = actual_sha, actual_md5 = file_digests(path)
    if sha256 is not None and actual_sha != sha256:
        return f"sha256 {actual_sha}, expected {sha256}", digests
    if md5 is not None and actual_md5 != md5:
        return f"md5 {actual_md5}, expected {md5}", digests
    return None, digests


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    md5: str | None = None,
    retries: int = 5,
    backoff_s: float | None = None,
    timeout_s: float = 60.0,
    chunk_bytes: int = 1 << 20,
    session: requests.Session | None = None,
    progress: bool = True,
    refetch: bool = False,
) -> Path:
    """Download ``url`` to ``dest`` unless a verified copy is already there; return ``dest``.

    ``sha256`` (preferred) or ``md5`` is required. Connection drops are retried ``retries`` times,
    each retry resuming from the ``.part`` file; after that a :class:`DownloadError` is raised and the
    ``.part`` kept so a rerun resumes. A checksum mismatch raises :class:`ChecksumError`.

    An existing ``dest`` that does not match is kept and reported with both digests: the usual cause
    is a typo in the configured checksum, and deleting an 18 GB archive for that is the wrong default.
    ``refetch=True`` deletes it (and any ``.part``) on purpose and downloads again.
    """
    if sha256 is None and md5 is None:
        raise ConfigError(f"no checksum configured for {url}: set sha256 (or md5)")
    dest = Path(dest)
    if refetch:
        for stale in (dest, _stamp_path(dest), dest.with_name(dest.name + ".part")):
            stale.unlink(missing_ok=True)
    if dest.exists():
        _check_existing(dest, sha256, md5)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    own_session = session is None
    session = session or requests.Session()
    try:
        _fetch_with_retries(
            session,
            url,
            dest,
            part,
            retries=retries,
            backoff_s=RETRY_BACKOFF_S if backoff_s is None else backoff_s,
            timeout_s=timeout_s,
            chunk_bytes=chunk_bytes,
            progress=progress,
        )
    finally:
        if own_session:
            session.close()
    _verify_and_publish(url, dest, part, sha256, md5)
    return dest


def _check_existing(dest: Path, sha256: str | None, md5: str | None) -> None:
    """Accept an existing ``dest`` that matches (stamping it), else keep it and report both digests."""
    if _stamp_matches(dest, sha256, md5):
        log.info("%s already downloaded and verified", dest)
        return
    problem, digests = _checksum_problem(dest, sha256, md5)
    if problem is None:
        _write_stamp(dest, digests)
        log.info("%s already downloaded and verified", dest)
        return
    raise ChecksumError(
        f"{dest} exists but does not match the configured checksum: it has sha256 {digests[0]} and "
        f"md5 {digests[1]}; the config expects {_expected(sha256, md5)}. The file was kept: fix the "
        "checksum in the config, or rerun with --refetch to delete it and download again"
    )


# What a dropped connection looks like to requests/urllib3 (and a short body): retried, resuming.
_RETRIED = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,
)


def _fetch_with_retries(
    session: requests.Session,
    url: str,
    dest: Path,
    part: Path,
    *,
    retries: int,
    backoff_s: float,
    timeout_s: float,
    chunk_bytes: int,
    progress: bool,
) -> None:
    """Fetch into ``part``, resuming after each drop, with a growing pause; give up after ``retries``."""
    attempt = 0
    while True:
        try:
            _fetch_into(session, url, part, timeout_s=timeout_s, chunk_bytes=chunk_bytes, progress=progress)
            return
        except (*_RETRIED, _Incomplete) as exc:
            attempt += 1
            have = part.stat().st_size if part.exists() else 0
            if attempt > retries:
                raise DownloadError(
                    f"downloading {url} to {dest} failed after {attempt} attempt(s) ({exc}); "
                    f"{have} bytes kept in {part}, a rerun resumes from there"
                ) from exc
            log.warning(
                "download of %s interrupted at %d bytes (%s); resuming (retry %d/%d)", url, have, exc, attempt, retries
            )
            time.sleep(backoff_s * attempt)


def _verify_and_publish(url: str, dest: Path, part: Path, sha256: str | None, md5: str | None) -> None:
    """Check the finished ``part`` and rename it to ``dest`` (a mismatch removes it and says why)."""
    problem, digests = _checksum_problem(part, sha256, md5)
    if problem is not None:
        size = part.stat().st_size
        part.unlink()
        raise ChecksumError(
            f"{url}: downloaded file {dest} ({size} bytes) has {problem}; the partial file {part} was "
            "removed (truncated or corrupted download, or a wrong checksum in the config)"
        )
    os.replace(part, dest)
    _write_stamp(dest, digests)
    log.info("downloaded and verified %s", dest)


def _expected(sha256: str | None, md5: str | None) -> str:
    return " and ".join(f"{name} {value}" for name, value in (("sha256", sha256), ("md5", md5)) if value)


def _stamp_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".verified.json")


def _write_stamp(dest: Path, digests: tuple[str, str]) -> None:
    """Record the verified digests with size and mtime, so reruns skip re-hashing multi-GB files."""
    sha, md5 = digests
    st = dest.stat()
    write_json_atomic(_stamp_path(dest), {"sha256": sha, "md5": md5, "size": st.st_size, "mtime_ns": st.st_mtime_ns})


def _stamp_matches(dest: Path, sha256: str | None, md5: str | None) -> bool:
    stamp_path = _stamp_path(dest)
    if not stamp_path.is_file():
        return False
    try:
        stamp = read_json(stamp_path)
    except ValueError:
        return False
    st = dest.stat()
    return (
        stamp.get("size") == st.st_size
        and stamp.get("mtime_ns") == st.st_mtime_ns
        and (sha256 is None or stamp.get("sha256") == sha256)
        and (md5 is None or stamp.get("md5") == md5)
    )


def _fetch_into(
    session: requests.Session, url: str, part: Path, *, timeout_s: float, chunk_bytes: int, progress: bool
) -> None:
    """One HTTP request appending to ``part`` from its current size; raises on a short body."""
    offset = part.stat().st_size if part.exists() else 0
    # identity encoding: byte offsets must refer to the file itself, not to a compressed stream.
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with session.get(url, headers=headers, stream=True, timeout=timeout_s) as resp:
        if offset and resp.status_code == 416:
            return  # nothing left to send: the .part is complete (or too long); the checksum decides
        if resp.status_code >= 500:
            raise requests.ConnectionError(f"HTTP {resp.status_code} from {url}")
        if resp.status_code not in (200, 206):
            raise DownloadError(f"{url}: HTTP {resp.status_code} {resp.reason}")
        if resp.status_code == 206:
            match = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
            if match is None or int(match.group(1)) != offset:
                raise DownloadError(
                    f"{url}: asked for bytes from {offset} but got Content-Range "
                    f"{resp.headers.get('Content-Range')!r}; delete {part} and retry"
                )
        elif offset:
            log.info("%s ignores Range requests; restarting the download from the beginning", url)
            offset = 0
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with (
            open(part, "ab" if offset else "wb") as fh,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            for chunk in _body_chunks(resp, chunk_bytes):
                fh.write(chunk)
                bar.update(len(chunk))
    if total is not None and part.stat().st_size < total:
        raise _Incomplete(f"got {part.stat().st_size} of {total} bytes")


def _body_chunks(resp: requests.Response, chunk_bytes: int) -> Iterator[bytes]:
    """The body as it arrives. urllib3's ``read1`` returns whatever bytes are available, so bytes
    received before a dropped connection reach the ``.part`` file (``iter_content`` loses the
    partly filled chunk)."""
    read1 = getattr(resp.raw, "read1", None)
    if read1 is None:  # urllib3 < 2
        yield from resp.iter_content(chunk_size=chunk_bytes)
        return
    while chunk := read1(chunk_bytes, decode_content=True):
        yield chunk


def is_archive_name(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def extract_archive(
    archive: str | os.PathLike[str], dest_dir: str | os.PathLike[str], *, archive_sha256: str
) -> list[Path]:
    """Unpack a zip/tar ``archive`` into ``dest_dir``; return the top-level paths it provides.

    Members are unpacked into a temporary folder inside ``dest_dir`` and then renamed into place
    (merged into folders that already exist), so no half-written file appears under its final name.
    A marker recording ``archive_sha256`` makes reruns skip archives that were fully extracted.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    marker = dest_dir / EXTRACT_MARKERS / f"{archive.name}.json"
    # A killed extraction leaves its private temporary folder behind (kill -9 skips the cleanup).
    for stale in dest_dir.glob(f".{archive.name}.*.extracting"):
        shutil.rmtree(stale, ignore_errors=True)
    if marker.exists():
        info = read_json(marker)
        entries = [dest_dir / name for name in info.get("entries", [])]
        if info.get("sha256") == archive_sha256 and all(p.exists() for p in entries):
            log.info("%s already extracted into %s", archive.name, dest_dir)
            return entries
    tmp = Path(tempfile.mkdtemp(prefix=f".{archive.name}.", suffix=".extracting", dir=dest_dir))
    try:
        _unpack(archive, tmp)
        names = sorted(p.name for p in tmp.iterdir())
        for name in names:
            _merge(tmp / name, dest_dir / name)
        write_json_atomic(marker, {"archive": archive.name, "sha256": archive_sha256, "entries": names})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("extracted %s into %s (%s)", archive.name, dest_dir, ", ".join(names))
    return [dest_dir / name for name in names]


def _unpack(archive: Path, into: Path) -> None:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                # Refuse members that would land outside the target ("zip slip").
                parts = Path(member).parts
                if member.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                    raise DownloadError(f"{archive}: unsafe member path {member!r} in zip archive")
            try:
                zf.extractall(into)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise DownloadError(f"{archive}: cannot extract zip archive: {exc}") from exc
    elif tarfile.is_tarfile(archive):
        try:
            with tarfile.open(archive) as tf:
                tf.extractall(into, filter="data")  # the "data" filter rejects absolute/escaping members
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DownloadError(f"{archive}: cannot extract tar archive: {exc}") from exc
    else:
        raise DownloadError(f"{archive}: not a zip or tar archive (set extract: false to keep it as is)")


def _merge(src: Path, dst: Path) -> None:
    """Move ``src`` onto ``dst``: a plain rename, or a recursive merge when both are folders."""
    if src.is_dir() and dst.is_dir() and not dst.is_symlink():
        for child in sorted(src.iterdir()):
            _merge(child, dst / child.name)
        return
    if dst.is_dir() and not dst.is_symlink():
        shutil.rmtree(dst)
    os.replace(src, dst)
