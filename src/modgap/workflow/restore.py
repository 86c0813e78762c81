"""Restore results from DVC without recomputation.

DVC does not keep modification times, so files it checks out look newer or older than Snakemake
expects and would trigger reruns. After ``dvc pull``/``dvc checkout`` we let Snakemake touch every
output in DAG order, then confirm that a dry run has nothing to do.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence

from modgap.errors import ModgapError

log = logging.getLogger(__name__)

NOTHING_TO_DO = "Nothing to be done"


def _run(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    log.info("$ %s", " ".join(command))
    result = subprocess.run(list(command), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ModgapError(f"`{' '.join(command)}` failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def snakemake_pending_jobs(snakemake_args: Sequence[str] = ()) -> str:
    """Return the dry-run summary; empty when Snakemake has nothing to do."""
    result = _run(["snakemake", "-n", "--quiet", "rules", *snakemake_args])
    output = result.stdout + result.stderr
    return "" if NOTHING_TO_DO in output or not output.strip() else output


def restore(*, pull: bool, remote: str | None = None, snakemake_args: Sequence[str] = ()) -> None:
    dvc = ["dvc", "pull"] if pull else ["dvc", "checkout"]
    if pull and remote:
        dvc += ["--remote", remote]
    _run(dvc)
    _run(["snakemake", "--touch", "--quiet", "all", *snakemake_args])
    pending = snakemake_pending_jobs(snakemake_args)
    if pending:
        raise ModgapError(f"after restore Snakemake still has work to do:\n{pending}")
    log.info("restored: snakemake -n has nothing to do")
