"""Training-loop tests on a tiny random-init Llama: loss goes down, resume == uninterrupted,
2-process gloo data parallel == 1 process with the same global batch, GPU path (skipped on CPU)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from modgap.mllm.config import load_config
from modgap.mllm.testing import free_port, make_fake_inputs, make_tiny_llm, tiny_config
from modgap.mllm.train import train_stage

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mllm-train")
    llm = make_tiny_llm(root / "llm")
    return {"llm": llm, **make_fake_inputs(root / "data", n_train=32, n_test=8)}


def _paths(tiny: dict[str, Path]) -> dict[str, Path]:
    return {k: tiny[k] for k in ("manifest", "embeddings_root", "substitutes")}


def _losses(out: Path) -> list[float]:
    with open(out / "loss.csv") as fh:
        return [float(r["loss"]) for r in csv.DictReader(fh)]


def _weights(out: Path) -> dict[str, torch.Tensor]:
    weights = {f"projector.{k}": v for k, v in load_file(str(out / "projector.safetensors")).items()}
    if (out / "llm").is_dir():
        weights.update({f"llm.{k}": v for k, v in load_file(str(out / "llm" / "model.safetensors")).items()})
    return weights


def test_three_steps_lower_the_loss_and_write_outputs(tiny: dict[str, Path], tmp_path: Path) -> None:
    # One fixed batch seen 3 times (max_samples = batch) so the decrease is not batch-to-batch noise.
    cfg = load_config(tiny_config(tiny["llm"], max_samples=4, epochs=3, max_steps=3))
    out = tmp_path / "stage1"
    summary = train_stage(cfg, 1, out_dir=out, **_paths(tiny))
    losses = _losses(out)
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert summary["steps"] == 3 and (out / "DONE.json").is_file() and (out / "loss.png").stat().st_size > 0
    assert not (out / "checkpoints").exists()
    # Stage 2 from stage 1: projector initialised from it, the LLM fully fine-tuned.
    out2 = tmp_path / "stage2"
    train_stage(cfg, 2, out_dir=out2, init_from=out, **_paths(tiny))
    assert _losses(out2)[-1] < _losses(out2)[0]
    assert (out2 / "llm" / "model.safetensors").is_file()

    from modgap.mllm.generate import generate, load_mllm

    mllm = load_mllm(out2)
    import numpy as np

    emb = np.load(tiny["embeddings_root"] / "test" / "image.npy")[:3]
    prompts = ["Describe the image briefly.", "Is there a cat in the image? Answer yes or no.", "Hi"]
    batched = generate(mllm, emb, prompts, max_new_tokens=4)
    single = [generate(mllm, emb[i : i + 1], prompts[i : i + 1], max_new_tokens=4)[0] for i in range(3)]
    assert batched == single and len(generate(mllm, None, prompts, max_new_tokens=2)) == 3


@pytest.mark.parametrize(("stage", "finetune"), [(1, "projector"), (2, "full"), (2, "lora")])
def test_resume_matches_uninterrupted(tiny: dict[str, Path], tmp_path: Path, stage: int, finetune: str) -> None:
    cfg = load_config(
        tiny_config(
            tiny["llm"],
            max_steps=4,
            save_every=2,
            grad_accum=2,
            per_device_batch_size=2,
            scheduler="cosine",
            warmup_ratio=0.25,
            finetune=finetune,
            template="plain" if stage == 1 else "chat",
        )
    )
    full, part = tmp_path / "full", tmp_path / "part"
    train_stage(cfg, stage, out_dir=full, **_paths(tiny))
    assert train_stage(cfg, stage, out_dir=part, stop_after_steps=3, **_paths(tiny)) == {"stopped_at": 3}
    assert not (part / "DONE.json").exists() and (part / "checkpoints" / "step-000002").is_dir()
    train_stage(cfg, stage, out_dir=part, **_paths(tiny))  # resumes from step 2
    assert _losses(part) == pytest.approx(_losses(full), rel=1e-6)
    if finetune == "lora":
        assert (part / "adapter").is_dir()
    a, b = _weights(full), _weights(part)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-7)


@pytest.mark.slow  # ~20-30 s: two spawned interpreters import torch/transformers on a shared 2-core CPU
def test_two_process_gloo_matches_one_process(tiny: dict[str, Path], tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    from modgap.mllm.testing import ddp_worker

    base = tiny_config(tiny["llm"], max_steps=3, save_every=100)
    one = load_config({**base, "stage1": {**base["stage1"], "per_device_batch_size": 4}})
    train_stage(one, 1, out_dir=tmp_path / "one", **_paths(tiny))
    two = {**base, "stage1": {**base["stage1"], "per_device_batch_size": 2}}
    paths = {k: str(v) for k, v in _paths(tiny).items()}
    mp.spawn(ddp_worker, args=(2, free_port(), two, 1, paths, str(tmp_path / "two")), nprocs=2, join=True)
    import json

    assert json.loads((tmp_path / "two" / "DONE.json").read_text())["processes"] == 2
    assert _losses(tmp_path / "two") == pytest.approx(_losses(tmp_path / "one"), rel=1e-4)
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_bf16_run(tmp_path: Path) -> None:
    import os

    llm = make_tiny_llm(tmp_path / "llm")
    paths = make_fake_inputs(tmp_path / "data", n_train=16, n_test=4)
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)  # earlier tests fixed mixed_precision="no" in the singleton
    os.environ["ACCELERATE_MIXED_PRECISION"] = "bf16"
    try:
        summary = train_stage(load_config(tiny_config(llm)), 1, out_dir=tmp_path / "s1", **paths)
        from modgap.mllm.generate import generate, load_mllm

        mllm = load_mllm(tmp_path / "s1", device="cuda")
        import numpy as np

        emb = np.load(paths["embeddings_root"] / "test" / "image.npy")[:2]
        assert len(generate(mllm, emb, ["", ""], max_new_tokens=3)) == 2
    finally:
        os.environ.pop("ACCELERATE_MIXED_PRECISION")
        AcceleratorState._reset_state(True)
    assert summary["mixed_precision"] == "bf16" and summary["final_loss"] < summary["first_loss"] + 1.0


def test_regimes_paired_text_only_and_no_stage1(tiny: dict[str, Path], tmp_path: Path) -> None:
    cfg = load_config(tiny_config(tiny["llm"], max_steps=1, finetune="lora"))
    # Paired upper bound: stage 1 on real image embeddings.
    s1 = train_stage(cfg, 1, out_dir=tmp_path / "paired", visual="image", **_paths(tiny))
    assert s1["inputs"]["visual_file"].endswith("train/image.npy")
    # Fully text-only: stage 2 on substitutes too.
    s2 = train_stage(
        cfg, 2, out_dir=tmp_path / "textonly", visual="substitute", init_from=tmp_path / "paired", **_paths(tiny)
    )
    assert s2["inputs"]["visual_file"].endswith("substitutes/train.npy")
    # No stage 1: random projector, real images.
    s3 = train_stage(cfg, 2, out_dir=tmp_path / "nostage1", init_from="none", **_paths(tiny))
    assert s3["inputs"]["visual_file"].endswith("train/image.npy")
    assert (tmp_path / "textonly" / "adapter").is_dir()


def test_projector_learning_rate_of_its_own_and_bf16(tiny: dict[str, Path], tmp_path: Path) -> None:
    """With the LLM side at 1e-6, Adam moves the projector by ~1e-6 a step unless ``projector_lr``
    gives it its own rate; bf16 autocast (accelerate mixed precision) runs on the CPU too."""
    shared = load_config(tiny_config(tiny["llm"], max_steps=2, lr=1e-6, finetune="lora"))
    own = load_config(
        tiny_config(tiny["llm"], max_steps=2, lr=1e-6, finetune="lora", projector_lr=1e-2, mixed_precision="bf16")
    )
    from accelerate.state import AcceleratorState

    train_stage(shared, 2, out_dir=tmp_path / "shared", **_paths(tiny))
    # accelerate's state is per process and fixes mixed precision once (the pipeline runs one stage
    # per process); reset it around the bf16 run so the other tests keep fp32.
    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        train_stage(own, 2, out_dir=tmp_path / "own", **_paths(tiny))
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    a, b = (load_file(str(tmp_path / d / "projector.safetensors")) for d in ("shared", "own"))
    moved = max(float((b[k] - a[k]).abs().max()) for k in a)
    assert moved > 1e-3  # ~2 steps x 1e-2 against ~2e-6
    assert all(torch.isfinite(torch.tensor(_losses(tmp_path / "own"))))
