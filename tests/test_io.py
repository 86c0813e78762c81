"""Atomic writes leave either the old file or the complete new one, never a partial file."""

from __future__ import annotations

import numpy as np
import pytest

from modgap.io import atomic_path, save_npy_atomic, sha256_file, write_json_atomic


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "x.bin"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("killed")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_failed_rewrite_keeps_previous_version(tmp_path):
    target = tmp_path / "x.json"
    write_json_atomic(target, {"a": 1})
    before = target.read_bytes()
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("{")
        raise RuntimeError("killed")
    assert target.read_bytes() == before


def test_npy_roundtrip_and_stable_bytes(tmp_path):
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    save_npy_atomic(tmp_path / "a.npy", array)
    save_npy_atomic(tmp_path / "b.npy", array)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), array)
    assert sha256_file(tmp_path / "a.npy") == sha256_file(tmp_path / "b.npy")


def test_json_is_canonical(tmp_path):
    write_json_atomic(tmp_path / "a.json", {"b": np.float64(0.5), "a": np.arange(2)})
    assert (tmp_path / "a.json").read_text() == '{\n  "a": [\n    0,\n    1\n  ],\n  "b": 0.5\n}\n'


def test_atomic_files_get_normal_permissions(tmp_path):
    import os

    write_json_atomic(tmp_path / "p.json", {})
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "p.json").stat().st_mode & 0o777 == 0o666 & ~mask
