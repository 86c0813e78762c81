#!/usr/bin/env bash
# `snakemake -n` for every paper-tier config (merged over config/config.yaml, as README runs them) under
# every profile given (default: local-gpu): each must resolve its DAG; prints the job count per config.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=$(cd "${VENV:-$root/.venv}/bin" && pwd)
profiles=("${@:-workflow/profiles/local-gpu}")
for profile in "${profiles[@]}"; do
  for config in config/paper/*.yaml; do
    out=$(PATH="$bin:$PATH" snakemake -n --quiet rules --configfile "$config" --profile "$profile" 2>&1) || {
      echo "$out" | tail -n 40; echo "paper_dry_runs: $config under $profile does not resolve" >&2; exit 1; }
    jobs=$(echo "$out" | awk '$1 == "total" {print $2; exit}')
    echo "paper_dry_runs: $config ($profile): ${jobs:-?} jobs"
  done
done
