"""Benchmark: AnisoAlign fit time for 100k stats vectors and transform throughput once fitted.

Synthetic anisotropic gapped unit embeddings (float32); prints JSON. Fit uses the spec-§6 defaults
except the number of training steps, which is a CLI option (the 20k Stage I steps of the spec take
hours on 2 CPU cores; the measured time per step is reported so the full cost can be extrapolated).

Run: ``python benchmarks/bench_align_aniso.py [--dim 256] [--fit-rows 100000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def gapped(n: int, d: int, seed: int, axis: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.float32) * np.linspace(1.5, 0.05, d, dtype=np.float32)
    x[:, axis] += 2.5
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--fit-rows", type=int, default=100_000)
    ap.add_argument("--transform-rows", type=int, default=100_000)
    ap.add_argument("--stage1-steps", type=int, default=300)
    ap.add_argument("--stage2-epochs", type=int, default=1)
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
    model.transform(q[:2000])  # warm-up
    t0 = time.perf_counter()
    model.transform(q)
    tr_s = time.perf_counter() - t0
    glob = make("aniso_global_init", {k: v for k, v in params.items() if not k.startswith("stage")}).fit(x, y)
    t0 = time.perf_counter()
    glob.transform(q)
    gl_s = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "dim": args.dim,
                "rank": model.meta_["aniso"]["rank"],
                "fit_rows": args.fit_rows,
                "fit_seconds": fit_s,
                "params": model.get_params(),
                "stage2_steps": model.meta_["aniso"].get("stage2_steps"),
                "transform_vectors_per_s": args.transform_rows / tr_s,
                "global_init_transform_vectors_per_s": args.transform_rows / gl_s,
                "perturbation": model.meta_["aniso"]["perturbation"],
                "load_average": os.getloadavg(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
