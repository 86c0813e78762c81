#!/usr/bin/env bash
# A real SLURM run of part of the embedded DAG (config/ci.yaml): data -> LiT encoder -> embeddings of
# every split -> gap statistics and report -> one alignment method (ReAlign), every job submitted by
# Snakemake's SLURM executor (workflow/profiles/slurm) to a one-node cluster on localhost started here
# (scripts/slurm_cluster.sh). The same targets are then run locally (or taken from LOCAL_RUN, a finished
# scripts/ci_pipeline.sh run directory) and compared byte for byte. The daemons started here are
# stopped by PID at the end, also on failure. Needs root. Usage: scripts/slurm_ci.sh [WORKDIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
work=${1:-$(mktemp -d "${TMPDIR:-/tmp}/modgap-slurm.XXXXXX")}
bin=$(cd "${VENV:-$root/.venv}/bin" && pwd)
state=$work/cluster
ENC=lit-effnet-minilm DS=embedded
TARGETS=(results/metrics/gap.json "results/align/$ENC/$DS/realign/diagnostics.json")
# Files compared: the targets and everything upstream of them that the DAG writes.
COMPARED=(resources/datasets/$DS/manifest.parquet results/encoders/$ENC/open_clip.pt results/embeddings
          results/gap/$ENC results/metrics/gap.json results/tables/gap_stats.csv "results/align/$ENC/$DS/realign")


"$root/scripts/slurm_cluster.sh" start "$state"
trap '"$root/scripts/slurm_cluster.sh" stop "$state"' EXIT
export SLURM_CONF=$state/slurm.conf

copy_checkout "$work/slurm"
start=$(date +%s)
(cd "$work/slurm" && PYTHONPATH="$work/slurm/src" PATH="$bin:$PATH" \
  snakemake --profile workflow/profiles/slurm "${TARGETS[@]}") > "$work/slurm.log" 2>&1 || {
  tail -n 60 "$work/slurm.log"; echo "slurm_ci: the SLURM run failed (log: $work/slurm.log)" >&2; exit 1; }
submitted=$(grep -oE "submitted with SLURM jobid [0-9]+" "$work/slurm.log" | sort -u | wc -l)
done_line=$(grep -E "^[0-9]+ of [0-9]+ steps \(100%\) done" "$work/slurm.log" | tail -n 1)
echo "slurm_ci: $submitted jobs submitted with sbatch by Snakemake; $done_line; $(( $(date +%s) - start )) s"

local_run=${LOCAL_RUN:-}
if [ -z "$local_run" ]; then
  local_run=$work/local
  copy_checkout "$local_run"
  (cd "$local_run" && PYTHONPATH="$local_run/src" PATH="$bin:$PATH" snakemake "${TARGETS[@]}") \
    > "$work/local.log" 2>&1 || { tail -n 60 "$work/local.log"; exit 1; }
fi

differing=0 compared=0
while IFS= read -r path; do
  compared=$((compared + 1))
  cmp -s "$local_run/$path" "$work/slurm/$path" || { differing=$((differing + 1)); echo "  differs: $path"; }
done < <(cd "$work/slurm" && find "${COMPARED[@]}" -type f ! -name '*.lock' ! -name 'timing.json' | sort)
echo "slurm_ci: $compared output files compared with a local run, $differing differ"
[ "$submitted" -gt 0 ] && [ "$differing" -eq 0 ]
