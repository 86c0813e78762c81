"""Run-to-run determinism for the stages that run torch (DESIGN "Engineering rules": the same config
gives the same tables).

Seeds are set by each stage from the config; thread counts are fixed per rule (Snakemake exports the
job's `threads` as OMP_NUM_THREADS and the stages pass them to torch), because a reduction split over a
different number of threads rounds differently. What is left is torch's choice of algorithm: this asks
for the deterministic ones (a warning, not an error, where an op has none), and fixes the cuBLAS
workspace so that GPU GEMMs are reproducible too.
"""

from __future__ import annotations

import os


def enable() -> None:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # must precede the first cuBLAS call
    import torch

    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
