"""Resumable checksummed downloads and atomic extraction, against a loopback HTTP server."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from _data_http import FakeServer, serve
from modgap.data.download import download_file, extract_archive
from modgap.errors import ChecksumError, DownloadError


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with serve() as state:
        yield state


def make_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("pack/a.txt", "alpha " * 2000)
        zf.writestr("pack/sub/b.txt", "beta " * 2000)
        zf.writestr("top.txt", "top")
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


FAST = {"backoff_s": 0.0, "timeout_s": 5.0, "progress": False, "chunk_bytes": 1024}


def test_download_verifies_sha256(server: FakeServer, tmp_path: Path) -> None:
    data = make_zip()
    server.files["/a.zip"] = data
    dest = download_file(server.url("/a.zip"), tmp_path / "a.zip", sha256=sha(data), **FAST)
    assert dest.read_bytes() == data
    assert not (tmp_path / "a.zip.part").exists()
    # A rerun finds the verified file and sends no request.
    n = len(server.requests)
    download_file(server.url("/a.zip"), tmp_path / "a.zip", sha256=sha(data), **FAST)
    assert len(server.requests) == n


def test_md5_is_accepted(server: FakeServer, tmp_path: Path) -> None:
    data = make_zip()
    server.files["/a.zip"] = data
    download_file(server.url("/a.zip"), tmp_path / "a.zip", md5=hashlib.md5(data).hexdigest(), **FAST)
    assert (tmp_path / "a.zip").read_bytes() == data


def test_dropped_connection_is_resumed_with_range(server: FakeServer, tmp_path: Path) -> None:
    data = make_zip()
    server.files["/a.zip"] = data
    server.drop_after["/a.zip"] = 3000
    download_file(server.url("/a.zip"), tmp_path / "a.zip", sha256=sha(data), retries=2, **FAST)
    assert (tmp_path / "a.zip").read_bytes() == data
    first, resumed = server.ranges("/a.zip")
    assert first is None and resumed is not None
    # Resumes from what reached the disk: at most the 3000 bytes sent (a partly read chunk is refetched).
    assert 0 < int(resumed.removeprefix("bytes=").rstrip("-")) <= 3000


def test_interrupted_run_keeps_part_and_rerun_resumes(server: FakeServer, tmp_path: Path) -> None:
    data = make_zip()
    server.files["/a.zip"] = data
    server.drop_after["/a.zip"] = 4096
    with pytest.raises(DownloadError, match=r"/a\.zip.*a\.zip\.part"):
        download_file(server.url("/a.zip"), tmp_path / "a.zip", sha256=sha(data), retries=0, **FAST)
    assert not (tmp_path / "a.zip").exists()
    assert (tmp_path / "a.zip.part").stat().st_size == 4096
    download_file(server.url("/a.zip"), tmp_path / "a.zip", sha256=sha(data), retries=0, **FAST)
    assert (tmp_path / "a.zip").read_bytes() == data
    assert server.ranges("/a.zip")[-1] == "bytes=4096-"


def test_preexisting_part_file_is_resumed(server: FakeServer, tmp_path: Path) -> None:
    data = make_zip()
    server.files["/a.zip"] = data
    (tmp_path / "a.zip.part").write_bytes(data[:1234])
    download_file(server.url("/a.zip"), tmp_path / "a.zip", sha256=sha(data), **FAST)
    assert (tmp_path / "a.zip").read_bytes() == data
    assert server.ranges("/a.zip") == ["bytes=1234-"]


def test_complete_part_file_gets_416_and_is_verified(server: FakeServer, tmp_path: Path) -> None:
    data = make_zip()
    server.files["/a.zip"] = data
    (tmp_path / "a.zip.part").write_bytes(data)  # killed between the last byte and the rename
    download_file(server.url("/a.zip"), tmp_path / "a.zip", sha256=sha(data), **FAST)
    assert (tmp_path / "a.zip").read_bytes() == data


def test_server_ignoring_range_restarts_cleanly(server: FakeServer, tmp_path: Path) -> None:
    data = make_zip()
    server.files["/a.zip"] = data
    server.ignore_range = True
    (tmp_path / "a.zip.part").write_bytes(data[:500])
    download_file(server.url("/a.zip"), tmp_path / "a.zip", sha256=sha(data), **FAST)
    assert (tmp_path / "a.zip").read_bytes() == data


@pytest.mark.parametrize("kind", ["truncated", "corrupted"])
def test_bad_content_raises_checksum_error_and_leaves_no_file(server: FakeServer, tmp_path: Path, kind: str) -> None:
    data = make_zip()
    if kind == "truncated":
        served = data[: len(data) // 2]
    else:
        served = bytearray(data)
        served[100:110] = b"XXXXXXXXXX"
        served = bytes(served)
    server.files["/a.zip"] = served
    with pytest.raises(ChecksumError) as info:
        download_file(server.url("/a.zip"), tmp_path / "a.zip", sha256=sha(data), **FAST)
    message = str(info.value)
    assert server.url("/a.zip") in message and str(tmp_path / "a.zip") in message
    assert not (tmp_path / "a.zip").exists()
    assert not (tmp_path / "a.zip.part").exists()


def test_http_error_names_url(server: FakeServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"/missing\.zip: HTTP 404"):
        download_file(server.url("/missing.zip"), tmp_path / "m.zip", sha256="0" * 64, **FAST)
    assert not (tmp_path / "m.zip").exists()


def test_zip_extraction_is_atomic_and_idempotent(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip())
    out = tmp_path / "out"
    (out / "pack").mkdir(parents=True)
    (out / "pack" / "a.txt").write_text("stale half-written file")
    entries = extract_archive(archive, out, archive_sha256=sha(archive.read_bytes()))
    assert sorted(p.name for p in entries) == ["pack", "top.txt"]
    assert (out / "pack" / "a.txt").read_text().startswith("alpha")
    assert (out / "pack" / "sub" / "b.txt").is_file()
    assert not [p for p in out.iterdir() if p.name.endswith(".extracting")]
    # Second call: the marker says it is done; nothing is rewritten.
    mtime = (out / "top.txt").stat().st_mtime_ns
    extract_archive(archive, out, archive_sha256=sha(archive.read_bytes()))
    assert (out / "top.txt").stat().st_mtime_ns == mtime


def test_tar_extraction(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        payload = b"hello"
        info = tarfile.TarInfo("d/x.txt")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    extract_archive(archive, tmp_path / "out", archive_sha256="x")
    assert (tmp_path / "out" / "d" / "x.txt").read_bytes() == b"hello"


def test_unsafe_zip_member_is_rejected(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escape.txt", "x")
    with pytest.raises(DownloadError, match=r"evil\.zip.*unsafe member"):
        extract_archive(archive, tmp_path / "out", archive_sha256="x")
    assert not (tmp_path / "escape.txt").exists()


def test_mismatching_existing_file_is_kept_and_refetch_downloads_again(server: FakeServer, tmp_path: Path) -> None:
    # Issue 12: a checksum typo used to delete an already verified (possibly 18 GB) file before failing.
    data = make_zip()
    server.files["/a.zip"] = data
    dest = download_file(server.url("/a.zip"), tmp_path / "a.zip", sha256=sha(data), **FAST)
    assert (tmp_path / "a.zip.verified.json").is_file()
    dest.write_bytes(b"replaced by something else")  # size/mtime no longer match the stamp
    with pytest.raises(ChecksumError) as err:
        download_file(server.url("/a.zip"), tmp_path / "a.zip", sha256=sha(data), **FAST)
    message = str(err.value)
    assert sha(b"replaced by something else") in message and sha(data) in message and "--refetch" in message
    assert dest.read_bytes() == b"replaced by something else" and len(server.requests) == 1
    download_file(server.url("/a.zip"), tmp_path / "a.zip", sha256=sha(data), refetch=True, **FAST)
    assert dest.read_bytes() == data and len(server.requests) == 2
