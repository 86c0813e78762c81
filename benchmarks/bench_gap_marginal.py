"""Benchmark: marginal statistics of N x d float32 embeddings (memory-mapped .npy) in one streaming pass.

Measures, over the same file:
- baseline: a plain numpy pass accumulating the column sums in float64 (memory bound);
- ours, mean only (``MomentAccumulator(with_cov=False)``: validation + re-normalisation + float64 mean);
- ours, mean + covariance with float64 GEMMs (the exact default) and with float32 GEMMs on shifted
  chunks (float64 accumulation across chunks), plus the precision cost of the latter;
and peak RSS of each pass (run in a fresh subprocess so the numbers do not mix).
Prints one JSON object. The file is created if absent and deleted at the end unless ``--keep``.

    python benchmarks/bench_gap_marginal.py [--rows 1000000] [--dim 1280] [--path /tmp/...npy] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np


def make_file(path: Path, rows: int, dim: int, seed: int = 0, block: int = 65536) -> None:
    """Unit-norm float32 rows with a gap-like mean and an anisotropic spectrum, written block by block."""
    rng = np.random.default_rng(seed)
    scales = (1.0 / np.arange(1, dim + 1) ** 0.5).astype(np.float32)
    mean = np.zeros(dim, dtype=np.float32)
    mean[0] = 3.0
    out = np.lib.format.open_memmap(path.with_suffix(".tmp.npy"), mode="w+", dtype=np.float32, shape=(rows, dim))
    for start in range(0, rows, block):
        n = min(block, rows - start)
        chunk = rng.standard_normal((n, dim), dtype=np.float32) * scales + mean
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        out[start : start + n] = chunk
    out.flush()
    del out
    os.replace(path.with_suffix(".tmp.npy"), path)


class _AnonPeak:
    """Samples RssAnon (private memory; excludes the memory-mapped file's page-cache pages) every 20 ms."""

    def __init__(self) -> None:
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def read_kb() -> int:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self.read_kb())
            time.sleep(0.02)

    def __enter__(self) -> _AnonPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, self.read_kb())


def _pass(kind: str, path: str, chunk_rows: int) -> dict:
    """One timed pass in this process; returns seconds, result digest and peak memory."""
    with _AnonPeak() as anon:
        out = _timed_pass(kind, path, chunk_rows)
    out["peak_anon_rss_mb"] = anon.peak_kb / 1024
    # ru_maxrss also counts the mapped file's resident pages, so it grows with N by construction.
    out["peak_rss_incl_mmap_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _timed_pass(kind: str, path: str, chunk_rows: int) -> dict:
    array = np.load(path, mmap_mode="r")
    t0 = time.perf_counter()
    if kind == "numpy_f64_sum":
        total = np.zeros(array.shape[1])
        for start in range(0, array.shape[0], chunk_rows):
            total += array[start : start + chunk_rows].sum(axis=0, dtype=np.float64)
        digest = {"mean_l2": float(np.linalg.norm(total / array.shape[0]))}
    else:
        from modgap.stats.moments import MomentAccumulator

        acc = MomentAccumulator(
            array.shape[1],
            name=path,
            with_cov=kind != "ours_mean",
            gemm_dtype=np.float32 if kind == "ours_cov_f32gemm" else np.float64,
        )
        acc.update_from(array, chunk_rows)
        digest = {"mean_l2": float(np.linalg.norm(acc.mean))}
        if acc.with_cov:
            cov = acc.cov
            digest["trace"] = float(np.trace(cov))
            np.save(path + f".{kind}.cov.npy", cov)
    return {"seconds": time.perf_counter() - t0, **digest}


def run_isolated(kind: str, path: Path, chunk_rows: int) -> dict:
    cmd = [sys.executable, __file__, "--_pass", kind, "--path", str(path), "--chunk-rows", str(chunk_rows)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--path", type=Path, default=Path("/tmp/modgap_bench_gap_marginal.npy"))
    parser.add_argument("--chunk-rows", type=int, default=16384)
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    parser.add_argument(
        "--passes",
        default="numpy_f64_sum,ours_mean,ours_cov_f32gemm,ours_cov_f64",
        help="comma-separated subset of the passes to run",
    )
    parser.add_argument("--_pass", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._pass:
        print(json.dumps(_pass(args._pass, str(args.path), args.chunk_rows)))
        return 0

    created = False
    if not args.path.exists():
        t0 = time.perf_counter()
        make_file(args.path, args.rows, args.dim)
        created = True
        print(f"created {args.path} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    rows, dim = np.load(args.path, mmap_mode="r").shape
    gigabytes = rows * dim * 4 / 1e9
    # Warm the page cache so every pass reads the same (cached) bytes.
    _pass("numpy_f64_sum", str(args.path), args.chunk_rows)
    results = {}
    for kind in args.passes.split(","):
        rec = run_isolated(kind, args.path, args.chunk_rows)
        rec["GB_per_s"] = gigabytes / rec["seconds"]
        results[kind] = rec
        print(f"{kind}: {rec['seconds']:.1f}s {rec['GB_per_s']:.3f} GB/s", file=sys.stderr)
    base = results.get("numpy_f64_sum", {}).get("GB_per_s")
    if base:
        for rec in results.values():
            rec["ratio_to_numpy"] = rec["GB_per_s"] / base
    f32 = Path(str(args.path) + ".ours_cov_f32gemm.cov.npy")
    f64 = Path(str(args.path) + ".ours_cov_f64.cov.npy")
    precision = None
    if f32.exists() and f64.exists():
        a, b = np.load(f32), np.load(f64)
        precision = {
            "max_abs_diff": float(np.abs(a - b).max()),
            "max_rel_diff_vs_max_entry": float(np.abs(a - b).max() / np.abs(b).max()),
            "rel_frobenius": float(np.linalg.norm(a - b) / np.linalg.norm(b)),
        }
    for p in (f32, f64):
        p.unlink(missing_ok=True)
    report = {
        "rows": int(rows),
        "dim": int(dim),
        "file_GB": gigabytes,
        "chunk_rows": args.chunk_rows,
        "cpu_count": os.cpu_count(),
        "passes": results,
        "f32_gemm_precision": precision,
        "note": "covariance is compute bound (~N d^2 multiply-adds), the numpy baseline memory bound",
    }
    print(json.dumps(report, indent=2))
    if created and not args.keep:
        args.path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
