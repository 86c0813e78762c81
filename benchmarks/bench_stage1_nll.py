"""Does a Stage-1 projector carry the image? Teacher-forced caption NLL, real vs shuffled test images.

Greedy probe captions can be empty (the plain template's first greedy token is often its newline stop)
and then score 0 under both conditions; the caption NLL per token does not depend on decoding. For each
Stage-1 folder: mean NLL of the true caption given its own test image and given the image of the next
item (a cyclic shift: no item keeps its image), the paired difference and its 95 % bootstrap interval.
Usage (in a workspace after the pipeline):

    python benchmarks/bench_stage1_nll.py [--root .] [--items 200] SOURCE ...   # e.g. image realign identity
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from modgap.mllm.data import encode_example
from modgap.mllm.generate import load_mllm

RUN = "lit-effnet-minilm/embedded"
LLM = "smollm2-135m-instruct"


def caption_nll(mllm, captions: list[str], embeddings: np.ndarray) -> np.ndarray:
    """Per-item mean NLL per caption token (plain template, the Stage-1 target)."""
    out = []
    with torch.no_grad():
        for caption, emb in zip(captions, embeddings, strict=True):
            e = encode_example(
                mllm.tokenizer, "plain", None, caption, num_visual=mllm.num_visual, system_prompt=None, max_length=48
            )
            ids = torch.tensor([e.input_ids])
            res = mllm.model(
                ids,
                torch.ones_like(ids),
                torch.tensor([e.image_mask]),
                torch.tensor(emb[None]),
                torch.tensor([e.labels]),
            )
            out.append(float(res["loss_sum"] / res["n_tokens"]))
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sources", nargs="+", help="Stage-1 inputs: image, realign, identity, anisoalign, ...")
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    split = args.root / "results/embeddings" / RUN / "test"
    ids = (split / "image_ids.txt").read_text().split()[: args.items]
    emb = np.load(split / "image.npy")[: args.items]
    manifest = pd.read_parquet(args.root / "resources/datasets/embedded/manifest.parquet").set_index("id")
    captions = [str(manifest.loc[i, "caption"]) for i in ids]
    for source in args.sources:
        rng = np.random.default_rng(0)
        mllm = load_mllm(args.root / "results/mllm" / RUN / LLM / "stage1" / source)
        real = caption_nll(mllm, captions, emb)
        shuffled = caption_nll(mllm, captions, np.roll(emb, 1, axis=0))
        diff = shuffled - real
        draws = [diff[rng.integers(0, diff.size, diff.size)].mean() for _ in range(args.resamples)]
        print(json.dumps({
            "source": source,
            "nll_real": float(real.mean()),
            "nll_shuffled": float(shuffled.mean()),
            "shuffled_minus_real": float(diff.mean()),
            "ci95": [float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))],
            "n": int(diff.size),
        }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
