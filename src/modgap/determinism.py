"""Run-to-run determinism for the stages that run torch (DESIGN "Engineering rules": the same config
gives the same tables).

Seeds are set by each stage from the config; thread counts are fixed per rule (Snakemake exports the
job's `threads` as OMP_NUM_THREADS and the stages pass them to torch), because a reduction split over a
different number of threads rounds differently. What is left is torch's choice of algorithm: this asks
for the deterministic ones (a warning, not an error, where an op has none), and fixes the cuBLAS
workspace so that GPU GEMMs are reproducible too.

Across machines, MKL (torch's CPU BLAS) picks its kernels by instruction set: an AVX-512 Intel CPU
and an AVX2 one round float32 GEMMs differently. ``MKL_CBWR=AVX2`` (Conditional Numerical
Reproducibility) pins the AVX2 branch wherever AVX2 exists; on this project's reference machine it
is the branch MKL already takes (identical bits with and without it, measured on this AVX2-only
CPU), so it costs nothing here. MKL reads it at its first call, so setting it after ``import torch``
still works (checked). A user's own ``MKL_CBWR`` wins. oneDNN's ISA cap (``ONEDNN_MAX_CPU_ISA``)
changed neither conv nor bf16-GEMM bits here and would disable the avx512_bf16 kernels of CPUs that
have them, so it is left alone.
"""

from __future__ import annotations

import os


def enable() -> None:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # must precede the first cuBLAS call
    os.environ.setdefault("MKL_CBWR", "AVX2")  # must precede the first MKL call
    import torch

    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
