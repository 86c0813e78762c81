#!/usr/bin/env bash
# README's pipeline command, `snakemake` with no arguments, on the CI-sized config (config/ci.yaml), run
# from cold in two scratch copies of this checkout. Checks that:
#   1. both runs finish and a following `snakemake -n` has nothing to do;
#   2. the two runs wrote byte-identical metrics, tables, claims, alignment states and diagnostics
#      (determinism on one machine and one lock); figures are compared too and reported.
# The checkout itself is not touched. Usage: scripts/ci_pipeline.sh [WORKDIR] (default: a new temp dir).
# Environment: VENV (default .venv of this checkout), RUNS (default 2; 1 skips the determinism check).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
work=${1:-$(mktemp -d "${TMPDIR:-/tmp}/modgap-ci.XXXXXX")}
bin=$(cd "${VENV:-$root/.venv}/bin" && pwd)
runs=${RUNS:-2}


run_once() {
  local dest=$1 start end
  copy_checkout "$dest"
  start=$(date +%s)
  # PYTHONPATH: the copy runs its own sources, not those the venv's editable install points at.
  (cd "$dest" && PYTHONPATH="$dest/src" PATH="$bin:$PATH" snakemake) > "$dest.log" 2>&1 || {
    tail -n 80 "$dest.log"; echo "ci_pipeline: snakemake failed in $dest (log: $dest.log)" >&2; exit 1; }
  end=$(date +%s)
  grep -E "^[0-9]+ of [0-9]+ steps \(100%\) done" "$dest.log" | tail -n 1
  echo "ci_pipeline: cold run in $dest took $((end - start)) s"
  if ! (cd "$dest" && PYTHONPATH="$dest/src" PATH="$bin:$PATH" snakemake -n 2>&1) | grep -q "Nothing to be done"; then
    echo "ci_pipeline: snakemake -n after the run still has jobs to do" >&2; exit 1
  fi
}

for i in $(seq 1 "$runs"); do run_once "$work/run$i"; done
[ "$runs" -ge 2 ] || exit 0

# Required byte-identical: every JSON/CSV/Markdown/LaTeX result, every alignment state, the gap statistics
# and the embeddings. Figures are compared and reported (PDFs are written without timestamps).
status=0
compare() {  # compare <label> <find expression...>
  local label=$1; shift
  local listed differing
  # timing.json holds wall-clock seconds: it differs between identical runs by design.
  listed=$(cd "$work/run1" && find results "$@" -type f ! -name timing.json | sort)
  differing=0
  while IFS= read -r path; do
    [ -n "$path" ] || continue
    if ! cmp -s "$work/run1/$path" "$work/run2/$path"; then
      differing=$((differing + 1)); echo "  differs: $path"
    fi
  done <<< "$listed"
  echo "ci_pipeline: $label: $(grep -c . <<< "$listed") files, $differing differ between two cold runs"
  [ "$differing" -eq 0 ]
}
compare "metrics, tables, claims" \( -path 'results/metrics/*' -o -path 'results/tables/*' -o -name claims.md \) \
  || status=1
compare "alignment states and diagnostics" -path 'results/align/*' \( -name 'state.*' -o -name diagnostics.json \
  -o -name '*.npy' \) || status=1
compare "gap statistics and embeddings" \( -path 'results/gap/*' -o -path 'results/embeddings/*' \) \
  \( -name '*.json' -o -name '*.npy' -o -name '*.npz' -o -name '*.txt' \) || status=1
# Figures are reported, not required: their bytes depend on the font cache and the renderer as well as
# on the numbers, which the groups above already pin down.
compare "figures (PNG, PDF), reported only" -path 'results/figures/*' || true
exit $status
