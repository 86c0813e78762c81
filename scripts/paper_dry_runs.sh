#!/usr/bin/env bash
# `snakemake -n` for every paper-tier config (merged over config/config.yaml, as README runs them) under
# every cluster and GPU profile, and the default config under each profile too. Each must resolve its
# DAG; prints the job count. Under a GPU profile, every job of a rule whose code runs on CUDA must ask
# for a GPU (gpu=1 or more in its resources), or the script fails naming the job.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=$(cd "${VENV:-$root/.venv}/bin" && pwd)
GPU_RULES="extract_embeddings|mllm_stage1|mllm_stage2|eval_model|eval_lmms"
profiles=(local-gpu slurm slurm-gpu kubernetes)

dry_run() {  # dry_run PROFILE [--configfile FILE]
  local profile=$1; shift
  local extra=()
  # Kubernetes pods share no filesystem: inputs come from the storage prefix, here this checkout.
  [ "$profile" = kubernetes ] && extra=(--default-storage-prefix "$root")
  PATH="$bin:$PATH" snakemake -n --forceall --profile "workflow/profiles/$profile" "${extra[@]}" "$@" 2>&1
}

for profile in "${profiles[@]}"; do
  for config in "" config/paper/*.yaml; do
    label=${config:-config/config.yaml}
    out=$(dry_run "$profile" ${config:+--configfile "$config"}) || {
      echo "$out" | tail -n 40; echo "paper_dry_runs: $label under $profile does not resolve" >&2; exit 1; }
    jobs=$(echo "$out" | awk '$1 == "total" && !seen {print $2; seen = 1}')
    line="paper_dry_runs: $label ($profile): ${jobs:-?} jobs"
    if [ -n "$config" ] && [[ "$profile" == *gpu* ]]; then
      # Each job block: "rule NAME:" ... "resources: ..."; a GPU rule's resources must hold gpu>=1.
      missing=$(echo "$out" | awk -v rules="^($GPU_RULES)$" '
        /^(local)?rule [a-z_0-9]+:/ { rule = $NF; sub(":", "", rule) }
        /^    resources:/ && rule ~ rules { total++; if ($0 !~ /(gpu=|gres=gpu:)[1-9]/) bad++ }
        END { printf "%d %d", total, bad }')
      read -r gpu_jobs bad <<< "$missing"
      [ "$gpu_jobs" -gt 0 ] && [ "$bad" -eq 0 ] || {
        echo "paper_dry_runs: $label ($profile): $bad of $gpu_jobs GPU-rule jobs ask for no GPU" >&2; exit 1; }
      line="$line, all $gpu_jobs GPU-rule jobs request gpu>=1"
    fi
    echo "$line"
  done
done
