"""Cold run of the default DAG in a fresh clone, no-change dry-run time, and what one parameter change reruns.

Usage: python benchmarks/bench_pipeline.py [--targets T ...] [--workdir DIR] [--keep]
Clones the committed HEAD (so nothing untracked helps), runs `snakemake -c2 TARGETS` cold, times a
second `snakemake -n`, then changes one encoder-training parameter (`encoders.<enc>.train.epochs`)
and lists the jobs Snakemake would rerun. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(cmd: list[str], cwd: Path) -> tuple[float, str]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed, result.stdout + result.stderr


def planned_jobs(output: str) -> dict[str, int]:
    """Job counts from Snakemake's dry-run 'Job stats' table."""
    match = re.search(r"Job stats:\n(.*?)\n\n", output, re.S)
    if not match:
        return {}
    jobs = {}
    for line in match.group(1).splitlines()[2:]:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            jobs[parts[0]] = int(parts[1])
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", nargs="*", default=[], help="default: the whole default DAG")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="modgap-bench-"))
    clone = workdir / "modgap"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    cold_s, cold_out = run([str(BIN / "snakemake"), "-c2", *args.targets], clone)
    noop_s, noop_out = run([str(BIN / "snakemake"), "-n", *args.targets], clone)
    config_path = clone / "config/config.yaml"
    config = yaml.safe_load(config_path.read_text())
    enc = next(name for name, spec in config["encoders"].items() if "train" in spec)
    config["encoders"][enc]["train"]["epochs"] += 1
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    _, change_out = run([str(BIN / "snakemake"), "-n", *args.targets], clone)
    result = {
        "targets": args.targets or ["all"],
        "cold_run_s": round(cold_s, 1),
        "cold_jobs": planned_jobs(cold_out),
        "noop_dry_run_s": round(noop_s, 2),
        "noop_nothing_to_do": "Nothing to be done" in noop_out,
        "after_epochs_change_reruns": planned_jobs(change_out),
    }
    print(json.dumps(result, indent=2))
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
