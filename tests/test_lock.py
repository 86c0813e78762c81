"""The hashed lock agrees with pyproject.toml, and this environment was installed from it.

Fails when a dependency is added to or tightened in pyproject without `make lock`, when a pin loses its
hash, when the lock drops a constraint, or when the venv was installed from a different lock.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import PROJECT_ROOT
from modgap.provenance import lock_digest, lock_record_path

REQ = PROJECT_ROOT / "requirements"
LOCK, LLM_LOCK = REQ / "lock.txt", REQ / "embedded-llm.txt"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
# The platform the lock is compiled for (Makefile: --python-version 3.11 --python-platform x86_64-manylinux_2_28).
MARKER_ENV = {"python_version": "3.11", "python_full_version": "3.11.7", "sys_platform": "linux",
              "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
              "platform_python_implementation": "CPython", "os_name": "posix"}  # fmt: skip


def _makefile_extras() -> list[str]:
    text = (PROJECT_ROOT / "Makefile").read_text()
    return re.search(r"^EXTRAS := (.+)$", text, re.M).group(1).split(",")


def parse_lock(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) for every pin of a `uv pip compile --generate-hashes` file."""
    pins: dict[str, tuple[str, int]] = {}
    current = None
    for line in path.read_text().splitlines():
        if match := _PIN.match(line):
            current = canonicalize_name(match.group(1))
            pins[current] = (match.group(2), 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


def _requirements_in(path: Path) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in _makefile_extras():
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return reqs + _requirements_in(REQ / "build.in") + _requirements_in(REQ / "constraints.in")


def unsatisfied(requirements: list[Requirement], pins: dict[str, tuple[str, int]]) -> list[str]:
    problems = []
    for req in requirements:
        if req.marker is not None and not req.marker.evaluate(MARKER_ENV):
            continue
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req} is not in the lock")
        elif not req.specifier.contains(pins[name][0], prereleases=True):
            problems.append(f"{req}: the lock pins {pins[name][0]}")
    return problems


def test_lock_satisfies_every_pyproject_requirement():
    problems = unsatisfied(project_requirements(), parse_lock(LOCK))
    assert not problems, "pyproject.toml and requirements/lock.txt disagree (run `make lock`):\n" + "\n".join(problems)


def test_drift_check_catches_a_requirement_the_lock_does_not_meet():
    pins = parse_lock(LOCK)
    assert unsatisfied([Requirement("numpy<1.0")], pins) == [f"numpy<1.0: the lock pins {pins['numpy'][0]}"]
    assert unsatisfied([Requirement("not-a-locked-package>=1")], pins) == ["not-a-locked-package>=1 is not in the lock"]


def test_every_pin_is_hashed_and_the_llm_wheel_is_locked():
    for path in (LOCK, LLM_LOCK):
        pins = parse_lock(path)
        assert pins, f"{path.name} has no pins"
        assert [name for name, (_, hashes) in pins.items() if hashes == 0] == [], f"unhashed pins in {path.name}"
    assert not unsatisfied(_requirements_in(REQ / "embedded-llm.in"), parse_lock(LLM_LOCK))


def test_lock_files_say_how_they_were_made():
    for path in (LOCK, LLM_LOCK):
        assert "#    make lock" in path.read_text().splitlines()[1], f"{path.name}: regenerate it with `make lock`"


@pytest.mark.skipif(not lock_record_path().is_file(), reason="this environment was not installed by `make install`")
def test_this_environment_was_installed_from_the_committed_lock():
    recorded = json.loads(lock_record_path().read_text())["lock_sha256"]
    assert recorded == lock_digest([LOCK, LLM_LOCK])["lock_sha256"], "the lock changed since install: `make install`"
    pins = parse_lock(LOCK)
    for dist in ("numpy", "torch", "transformers", "snakemake", "filelock"):
        assert metadata.version(dist) == pins[dist][0], f"{dist} in {sys.prefix} differs from the lock"
