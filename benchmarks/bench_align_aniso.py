"""Benchmark: AnisoAlign fit time for 100k stats vectors and transform throughput once fitted.

Synthetic anisotropic gapped unit embeddings (float32); prints JSON. Fit uses the spec-§6 defaults
except the number of training steps, which is a CLI option (the 20k Stage I steps of the spec take
hours on 2 CPU cores; the measured time per step is reported so the full cost can be extrapolated).

Transform throughput is measured for the full model and the global-init variant at each
``--threads`` value, ``--repeats`` times, interleaved with the implementation at ``--baseline-rev``
(a git revision of ``src/modgap/align/aniso/infer.py``, loaded from git) when one is given, so old
and new run under the same load. Each run records the 1-min load average and the cores that other
processes kept busy during it (from /proc/stat minus this process's CPU time; the load average
counts this benchmark's own threads). The fast path's max abs difference from the straightforward
float64 operator is reported.

Run: ``python benchmarks/bench_align_aniso.py [--dim 256] [--fit-rows 100000] [--threads 1,2]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# A run counts as quiet when other processes kept less than this many cores busy during it.
QUIET_CORES = 0.1
sys.path.insert(0, str(ROOT / "src"))


def gapped(n: int, d: int, seed: int, axis: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.float32) * np.linspace(1.5, 0.05, d, dtype=np.float32)
    x[:, axis] += 2.5
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def load_baseline(rev: str):
    """The ``FastPath`` class of ``infer.py`` at git revision ``rev`` (run against today's stage2/geometry)."""
    src = subprocess.run(
        ["git", "show", f"{rev}:src/modgap/align/aniso/infer.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "baseline_infer.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("baseline_infer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FastPath


def baseline_transform(fast_path_cls, model, q: np.ndarray) -> np.ndarray:
    """The old transform loop: float64 unit-row chunks through the old fast path."""
    from modgap.align.aniso.method import torch_threads
    from modgap.align.source import EmbeddingSource

    st = model.state_
    fp = fast_path_cls(model._init, model._bounded, st["q_u"], st["v_scale"] if st["v_scale"].size else None)
    out = np.empty(q.shape, np.float32)
    with torch_threads(model.params["torch_threads"]):
        for start, y in EmbeddingSource(q, "q").chunks(model.chunk_rows):
            out[start : start + len(y)] = fp(y, st["mu_x"] - st["mu_hat"]).numpy()
    return out


def reference_diff(model, q: np.ndarray) -> float:
    """Max abs difference of ``transform`` from the straightforward float64 operator."""
    from modgap.align.aniso.infer import reference_transform
    from modgap.align.source import unit_rows

    st = model.state_
    ref = reference_transform(model._init, model._bounded, unit_rows(q), st["mu_x"] - st["mu_hat"])
    return float(np.abs(model.transform(q) - ref).max())


def busy_seconds() -> float | None:
    """CPU seconds busy since boot, all processes plus hypervisor steal (Linux /proc/stat), else None."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


def timed(fn, n: int) -> dict:
    """Vectors/s of one run, the 1-min load before/after, and the cores other processes kept busy meanwhile."""
    load, busy0, cpu0, t0 = os.getloadavg()[0], busy_seconds(), time.process_time(), time.perf_counter()
    fn()
    wall, cpu, busy1 = time.perf_counter() - t0, time.process_time() - cpu0, busy_seconds()
    other = None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0 - cpu) / wall)
    return {"vps": n / wall, "load": [load, os.getloadavg()[0]], "other_cores": other}


def throughput(models: dict, q: np.ndarray, threads: list[int], repeats: int, baseline) -> dict:
    """Median vectors/s per (model, threads[, baseline]) over interleaved repeats, with the load of each run."""
    out: dict[str, dict] = {}
    for th in threads:
        for name, model in models.items():
            model.params["torch_threads"] = th
            runs = {"new": lambda m=model: m.transform(q)}
            if baseline is not None:
                baseline_transform(baseline, model, q[:2000])  # warm-up
                runs["baseline"] = lambda m=model: baseline_transform(baseline, m, q)
            samples: dict[str, list] = {k: [] for k in runs}
            for _ in range(repeats):
                for key, fn in runs.items():
                    samples[key].append(timed(fn, len(q)))
            for key, vals in samples.items():
                quiet = [v["vps"] for v in vals if v["other_cores"] is not None and v["other_cores"] < QUIET_CORES]
                out[f"{name} threads={th} {key}"] = {
                    "vectors_per_s_median": statistics.median(v["vps"] for v in vals),
                    "vectors_per_s_median_quiet_runs": statistics.median(quiet) if quiet else None,
                    "runs": [{**v, "vps": round(v["vps"])} for v in vals],
                }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--fit-rows", type=int, default=100_000)
    ap.add_argument("--transform-rows", type=int, default=100_000)
    ap.add_argument("--stage1-steps", type=int, default=300)
    ap.add_argument("--stage2-epochs", type=int, default=1)
    ap.add_argument("--threads", default="1", help="comma-separated torch_threads values for transform")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--baseline-rev", default=None, help="git revision whose infer.FastPath to A/B against")
    ap.add_argument("--params", default="{}", help="extra AnisoAlign params (JSON)")
    args = ap.parse_args()
    from modgap.align import make

    x = gapped(args.fit_rows, args.dim, 0, 0)
    y = gapped(args.fit_rows, args.dim, 1, 1)
    q = gapped(args.transform_rows, args.dim, 2, 1)
    params = {"stage1_steps": args.stage1_steps, "stage2_epochs": args.stage2_epochs, **json.loads(args.params)}
    t0 = time.perf_counter()
    model = make("anisoalign", params).fit(x, y)
    fit_s = time.perf_counter() - t0
    glob = make("aniso_global_init", {k: v for k, v in params.items() if not k.startswith("stage")}).fit(x, y)
    models = {"full": model, "global_init": glob}
    for m in models.values():
        m.transform(q[:2000])  # warm-up (oneDNN primitive creation)
    baseline = load_baseline(args.baseline_rev) if args.baseline_rev else None
    threads = [int(t) for t in args.threads.split(",")]
    print(
        json.dumps(
            {
                "dim": args.dim,
                "rank": model.meta_["aniso"]["rank"],
                "fit_rows": args.fit_rows,
                "transform_rows": args.transform_rows,
                "fit_seconds": fit_s,
                "params": model.get_params(),
                "stage2_steps": model.meta_["aniso"].get("stage2_steps"),
                "throughput": throughput(models, q, threads, args.repeats, baseline),
                "fast_vs_reference_max_abs": {k: reference_diff(m, q[:5000]) for k, m in models.items()},
                "perturbation": model.meta_["aniso"]["perturbation"],
                "load_average_end": os.getloadavg(),
                "cpu_count": os.cpu_count(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
