"""Tiny offline fixtures for tests and smoke runs: a random-init Llama with a byte-level BPE tokenizer
and the SmolLM2 chat template, plus fake manifest/embeddings/substitutes laid out as in CONTRACTS.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# SmolLM2-Instruct's chat template (ChatML with a default system turn).
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LABELS = ["cat", "dog", "tree", "car", "house", "bird", "flower", "boat", "apple", "chair"]
ADJECTIVES = ["red", "small", "old", "happy", "green", "tall"]


def fake_captions(n: int, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    rng = np.random.default_rng(seed)
    captions, labels = [], []
    for _ in range(n):
        objs = [LABELS[i] for i in rng.choice(len(LABELS), size=int(rng.integers(1, 3)), replace=False)]
        adj = ADJECTIVES[int(rng.integers(len(ADJECTIVES)))]
        captions.append(f"a {adj} {objs[0]}" + (f" next to a {objs[1]}" if len(objs) > 1 else ""))
        labels.append(objs)
    return captions, labels


def make_tiny_llm(folder: str | Path, *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Save a random-init LlamaForCausalLM + tokenizer (with chat template) into ``folder``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from modgap.mllm.instructions import PHRASINGS

    folder = Path(folder)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    corpus = fake_captions(200)[0] + [p for bank in PHRASINGS.values() for ps in bank.values() for p in ps]
    corpus += ["system user assistant Yes No A B C D You are a helpful AI assistant.", *LABELS]
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(corpus, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    tok.chat_template = CHATML_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_fake_inputs(
    root: str | Path, *, n_train: int = 64, n_test: int = 16, dim: int = 256, seed: int = 0
) -> dict[str, Path]:
    """Manifest + embeddings + substitutes of one fake (encoder, dataset, method) under ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    captions, labels = fake_captions(n, seed)
    ids = [f"item{i:05d}" for i in range(n)]
    splits = ["train"] * n_train + ["test"] * n_test
    manifest = root / "resources/datasets/fake/manifest.parquet"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"id": ids, "image_path": [f"img/{i}.jpg" for i in ids], "caption": captions, "labels": labels, "split": splits}
    ).to_parquet(manifest)
    emb_root = root / "results/embeddings/enc/fake"
    sub_dir = root / "results/align/enc/fake/m/substitutes"
    sub_dir.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        rows = [i for i, s in enumerate(splits) if s == split]
        d = emb_root / split
        d.mkdir(parents=True, exist_ok=True)
        image, text = _unit(rng, len(rows), dim), _unit(rng, len(rows), dim)
        np.save(d / "image.npy", image)
        np.save(d / "text.npy", text)
        for kind in ("image", "text"):
            (d / f"{kind}_ids.txt").write_text("\n".join(ids[i] for i in rows) + "\n")
        sub = text + 0.1 * _unit(rng, len(rows), dim)
        np.save(sub_dir / f"{split}.npy", (sub / np.linalg.norm(sub, axis=1, keepdims=True)).astype(np.float32))
    return {"manifest": manifest, "embeddings_root": emb_root, "substitutes": sub_dir}


def tiny_config(llm_folder: str | Path, **stage_overrides: object) -> dict[str, object]:
    """A config dict for :func:`make_tiny_llm` models (few steps, short sequences)."""
    stage = {
        "per_device_batch_size": 4,
        "grad_accum": 1,
        "max_steps": 3,
        "max_length": 128,
        "save_every": 2,
        "warmup_ratio": 0.0,
        "scheduler": "constant",
    }
    return {
        "llm": {"source": str(llm_folder)},
        "visual_tokens": 2,
        "stage1": {**stage, "lr": 1e-2, "finetune": "projector", "template": "plain", **stage_overrides},
        "stage2": {**stage, "lr": 1e-3, "finetune": "full", "template": "chat", **stage_overrides},
    }


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ddp_worker(
    rank: int, world: int, port: int, config: dict[str, object], stage: int, paths: dict[str, str], out_dir: str
) -> None:
    """One rank of a CPU data-parallel (gloo) run, as ``accelerate launch --cpu`` would set it up."""
    import os

    import torch

    os.environ.update(
        {
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(rank),
            "LOCAL_WORLD_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "ACCELERATE_USE_CPU": "true",
            "OMP_NUM_THREADS": "1",
        }
    )
    torch.set_num_threads(1)
    from modgap.mllm.config import load_config
    from modgap.mllm.train import train_stage

    train_stage(load_config(config), stage, out_dir=out_dir, **paths)
