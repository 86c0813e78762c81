"""Environment provenance: which locked environment and which library versions produced an artefact.

`make install` records the sha256 of the lock files it installed from in ``<venv>/modgap-lock.json``
(``python -m modgap.provenance record-lock FILE...``). Every metrics file and ``meta.json`` the pipeline
writes carries :func:`environment`, so a reader can tell whether two results came from the same
environment before comparing their numbers. The record describes the environment, not the checkout: a
lock edited after installing does not change it until the environment is reinstalled.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

LOCK_RECORD = "modgap-lock.json"
# The libraries whose versions change numbers (DESIGN "Provenance"); the full list is the lock itself.
TRACKED_DISTRIBUTIONS = ("torch", "numpy", "scipy", "open_clip_torch", "transformers", "scikit-learn", "lmms-eval")


# Keys whose values measure the machine (time, memory), not the data: they differ between identical runs,
# so metrics files leave them out (benchmarks/ and the raw study files under results/align keep them).
MACHINE_MEASUREMENTS = frozenset(
    {"fit_seconds", "fit_s", "fit_transform_s", "transform_s", "max_rss_mb", "peak_traced_mb", "wall_seconds",
     "eval_seconds", "train_seconds", "total_seconds", "seconds", "cpu_seconds"}
)  # fmt: skip


MACHINE_SUFFIXES = ("_s", "_seconds")  # fit_s, fit_transform_s, eval_seconds, ...


def is_machine_measurement(key: object) -> bool:
    return key in MACHINE_MEASUREMENTS or str(key).endswith(MACHINE_SUFFIXES)


def without_machine_measurements(obj: Any) -> Any:
    """`obj` with every machine measurement (time, memory) removed, at any depth (a copy)."""
    if isinstance(obj, dict):
        return {k: without_machine_measurements(v) for k, v in obj.items() if not is_machine_measurement(k)}
    if isinstance(obj, list):
        return [without_machine_measurements(v) for v in obj]
    return obj


def lock_record_path(prefix: str | Path | None = None) -> Path:
    return Path(prefix or sys.prefix) / LOCK_RECORD


def lock_digest(paths: list[Path]) -> dict[str, Any]:
    """sha256 of each lock file and one digest over all of them (in the order given)."""
    combined = hashlib.sha256()
    files = {}
    for path in paths:
        data = path.read_bytes()
        files[path.name] = hashlib.sha256(data).hexdigest()
        combined.update(path.name.encode() + b"\0" + data)
    return {"lock_sha256": combined.hexdigest(), "files": files}


def record_lock(paths: list[Path], prefix: str | Path | None = None) -> Path:
    target = lock_record_path(prefix)
    target.write_text(json.dumps(lock_digest(paths), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return target


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@cache
def environment() -> dict[str, Any]:
    """The lock hash (None when the environment was not installed from the lock) and key versions."""
    record = lock_record_path()
    lock = json.loads(record.read_text(encoding="utf-8"))["lock_sha256"] if record.is_file() else None
    versions = {"python": platform.python_version(), **{d: _version(d) for d in TRACKED_DISTRIBUTIONS}}
    return {
        "lock_sha256": lock,
        "platform": f"{platform.system()}-{platform.machine()}",
        "versions": versions,
        "mkl_cbwr": os.environ.get("MKL_CBWR"),  # the BLAS branch pinned by modgap.determinism
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modgap.provenance", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record-lock", help=f"write <venv>/{LOCK_RECORD} from the lock files installed")
    rec.add_argument("locks", nargs="+", type=Path)
    sub.add_parser("show", help="print this environment's provenance as JSON")
    args = parser.parse_args(argv)
    if args.command == "record-lock":
        print(record_lock(args.locks))
    else:
        print(json.dumps(environment(), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
