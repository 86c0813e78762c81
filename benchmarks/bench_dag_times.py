"""Per-rule job times of a completed Snakemake run, from Snakemake's own job records.

Snakemake writes, for every output file, the job's rule, start and end time into
``.snakemake/metadata/`` (one JSON file per output, named by its base64 path). This reads them, keeps one
record per job, and prints per rule the job count, job-seconds (sum), the longest job and the wall span
(first start to last end), plus the groups the MLLM budget is stated for (training = both MLLM
stages; evaluation = every eval rule) and the whole run's wall time. Usage:

    python benchmarks/bench_dag_times.py [WORKSPACE]     # default: the current directory
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

GROUPS = {
    "mllm_training": ("mllm_stage1", "mllm_stage2"),
    "evaluation": ("eval_suite", "eval_model", "eval_report", "eval_lmms"),
}


def job_records(workspace: Path) -> list[dict[str, Any]]:
    """One {rule, start, end} per job (a job with several outputs has one metadata file per output)."""
    folder = workspace / ".snakemake" / "metadata"
    if not folder.is_dir():
        raise SystemExit(f"{folder}: no Snakemake metadata (run the pipeline in {workspace} first)")
    jobs: dict[tuple[str, Any], dict[str, Any]] = {}
    for path in folder.iterdir():
        meta = json.loads(path.read_text(encoding="utf-8"))
        if meta.get("starttime") is None or meta.get("endtime") is None or meta.get("incomplete"):
            continue
        # job_hash identifies the job; its outputs' start times differ by microseconds
        key = (meta["rule"], meta.get("job_hash", meta["starttime"]))
        start, end = float(meta["starttime"]), float(meta["endtime"])
        if key in jobs:
            start, end = min(start, jobs[key]["start"]), max(end, jobs[key]["end"])
        jobs[key] = {"rule": meta["rule"], "start": start, "end": end}
    return sorted(jobs.values(), key=lambda j: j["start"])


def summarise(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    by_rule: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for job in jobs:
        by_rule[job["rule"]].append(job)

    def stats(group: list[dict[str, Any]]) -> dict[str, Any]:
        durations = [j["end"] - j["start"] for j in group]
        return {
            "jobs": len(group),
            "job_seconds": round(sum(durations), 1),
            "longest_s": round(max(durations), 1),
            "wall_span_s": round(max(j["end"] for j in group) - min(j["start"] for j in group), 1),
        }

    out: dict[str, Any] = {"rules": {rule: stats(group) for rule, group in sorted(by_rule.items())}}
    for name, rules in GROUPS.items():
        group = [j for j in jobs if j["rule"] in rules]
        if group:
            out[name] = stats(group)
    if jobs:
        out["total"] = stats(jobs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workspace", nargs="?", default=".", type=Path)
    args = ap.parse_args()
    print(json.dumps(summarise(job_records(args.workspace)), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
