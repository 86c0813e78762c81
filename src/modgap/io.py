"""Atomic file output and hashing.

Every artefact is written to a temporary sibling and renamed into place, so a killed run never
leaves a truncated file that looks complete.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from modgap.errors import LockedError, NonFiniteError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; final files get the usual permissions
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def folder_lock(lock_path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` or fail at once with :class:`LockedError`.

    flock is released by the kernel when a process dies (kill -9 included), so a lock file left
    behind never blocks a rerun; the file is removed on a clean exit.
    """
    path = Path(lock_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666 & ~_UMASK)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(f"{path}: another run is writing this output right now; wait for it to finish") from None
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
    finally:
        os.close(fd)


@contextlib.contextmanager
def staged_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``target``; on success it replaces ``target`` whole.

    All-or-nothing stage output: a failure (or kill -9) leaves ``target`` as it was, and the next run
    removes the leftover ``.<name>.tmp-*`` / ``.<name>.old-*`` siblings under the folder's lock.
    """
    target = Path(target)
    parent = target.parent
    with folder_lock(parent / f".{target.name}.lock"):
        for stale in [*parent.glob(f".{target.name}.tmp-*"), *parent.glob(f".{target.name}.old-*")]:
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp creates 0700; outputs get the usual permissions
        try:
            yield tmp
            _swap_into_place(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _swap_into_place(tmp: Path, target: Path) -> None:
    # Two renames (a directory cannot be replaced atomically by another): between them the target is
    # absent, never half-written; the old copy is deleted only once the new one is in place.
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write JSON with sorted keys and a trailing newline (stable bytes for DVC diffs).

    NaN and Inf are not JSON: a :class:`NonFiniteError` names the first such key instead of writing
    a file that strict parsers (and DVC metrics) reject.
    """
    check_json_finite(obj, str(path))
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default, allow_nan=False)
    write_text_atomic(path, text + "\n")


def check_json_finite(obj: Any, where: str = "JSON") -> None:
    """Raise :class:`NonFiniteError` naming the dotted key of the first NaN/Inf number in ``obj``."""
    key = _first_non_finite(obj, ())
    if key is not None:
        dotted = ".".join(str(k) for k in key) or "<root>"
        raise NonFiniteError(f"{where}: value at key {dotted!r} is NaN or Inf; refusing to write invalid JSON")


def _first_non_finite(obj: Any, key: tuple[Any, ...]) -> tuple[Any, ...] | None:
    if isinstance(obj, dict):
        items: Any = sorted(obj.items(), key=lambda kv: str(kv[0]))
    elif isinstance(obj, list | tuple):
        items = enumerate(obj)
    elif isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fc" and not np.isfinite(obj).all():
            return (*key, int(np.flatnonzero(~np.isfinite(obj).ravel())[0]))
        return None
    elif isinstance(obj, float | np.floating):
        return None if math.isfinite(float(obj)) else key
    else:
        return None
    for k, v in items:
        found = _first_non_finite(v, (*key, k))
        if found is not None:
            return found
    return None


def check_finite_array(array: np.ndarray, where: str) -> None:
    """Raise :class:`NonFiniteError` if a float array holds NaN or Inf (checked before every write)."""
    if array.dtype.kind in "fc" and not np.isfinite(array).all():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise NonFiniteError(f"{where}: {bad} NaN/Inf value(s) in array of shape {array.shape}; not written")


def save_npy_atomic(path: str | os.PathLike[str], array: np.ndarray) -> None:
    check_finite_array(np.asarray(array), str(path))
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)


def save_npz_atomic(path: str | os.PathLike[str], arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` of finite arrays, atomically (a NaN anywhere fails before the file exists)."""
    for name, array in arrays.items():
        check_finite_array(np.asarray(array), f"{path}[{name}]")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def clean_stale_temps(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete ``.<name>.*.tmp`` files :func:`atomic_path` left behind when a run was killed (kill -9
    skips its cleanup); returns what was removed. Only call this while holding the folder's lock."""
    removed = []
    folder = Path(directory)
    if folder.is_dir():
        for tmp in folder.glob(".*.tmp"):
            if tmp.is_file():
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def sha256_file(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
