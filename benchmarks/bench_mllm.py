"""Time the embedded-default MLLM stages (SmolLM2-135M on CPU) on fake inputs and extrapolate.

Runs a few optimiser steps of stage 1 (projector only) and stage 2 (full fine-tune) through the real
training code and prints seconds per step (wall and process CPU), so step counts and sequence lengths
of ``presets/embedded.yaml`` can be sized to the 20-minute budget. Usage:

    python benchmarks/bench_mllm.py --steps 4 --threads 2 [--batch 8] [--visual-tokens 8]
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

from modgap.mllm.config import load_config
from modgap.mllm.testing import make_fake_inputs
from modgap.mllm.train import train_stage


def _lengthen_captions(manifest: Path, words: int) -> None:
    """Fake captions are ~4 words; real embedded captions are longer, so pad them for timing."""
    import pandas as pd

    frame = pd.read_parquet(manifest)
    filler = [
        "on",
        "a",
        "sunny",
        "day",
        "in",
        "the",
        "park",
        "with",
        "some",
        "trees",
        "and",
        "a",
        "blue",
        "sky",
        "above",
    ]
    frame["caption"] = [c + " " + " ".join(filler[: max(0, words - len(c.split()))]) for c in frame["caption"]]
    frame.to_parquet(manifest)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=None, help="override per-device batch of both stages")
    ap.add_argument("--visual-tokens", type=int, default=None)
    ap.add_argument("--stages", default="1,2")
    ap.add_argument("--finetune2", default=None, help="override stage-2 finetune (full|lora)")
    ap.add_argument("--system-prompt", default=None)
    ap.add_argument("--caption-words", type=int, default=12, help="pad fake captions to about this length")
    args = ap.parse_args()
    base = load_config("embedded").to_dict()
    base["torch_threads"] = args.threads
    if args.finetune2:
        base["stage2"]["finetune"] = args.finetune2
    if args.system_prompt:
        base["llm"]["system_prompt"] = args.system_prompt
    if args.visual_tokens:
        base["visual_tokens"] = args.visual_tokens
    for s in ("stage1", "stage2"):
        base[s].update(max_steps=args.steps, save_every=10_000)
        if args.batch:
            base[s]["per_device_batch_size"] = args.batch
    cfg = load_config(base)
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_fake_inputs(tmp, n_train=256, n_test=8)
        _lengthen_captions(paths["manifest"], args.caption_words)
        for stage in map(int, args.stages.split(",")):
            c0, t0 = time.process_time(), time.time()
            train_stage(cfg, stage, out_dir=Path(tmp) / f"s{stage}", init_from=None, **paths)
            with open(Path(tmp) / f"s{stage}" / "loss.csv") as fh:
                all_rows = list(csv.DictReader(fh))
            rows = all_rows[1:] or all_rows  # drop the warm-up step
            wall = [float(r["seconds"]) for r in rows]
            cpu = [float(r["cpu_seconds"]) for r in rows]
            report[f"stage{stage}"] = {
                "steps_timed": len(rows),
                "sec_per_step_wall": round(sum(wall) / len(wall), 3),
                "cpu_sec_per_step": round(sum(cpu) / len(cpu), 3),
                "answer_tokens_per_step": round(sum(int(r["tokens"]) for r in rows) / len(rows), 1),
                "total_wall": round(time.time() - t0, 2),
                "total_cpu": round(time.process_time() - c0, 2),
                "batch": cfg.stage(stage).per_device_batch_size,
                "max_length": cfg.stage(stage).max_length,
            }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
