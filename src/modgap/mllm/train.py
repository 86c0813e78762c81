"""One ReVision training stage on accelerate (1 CPU process, N GPUs or several nodes by launch config).

- Stage 1 (``template: plain``, ``finetune: projector``): caption reconstruction, LLM frozen.
- Stage 2 (``template: chat``, ``finetune: full|lora``): instruction tuning, projector from stage 1.
The visual input of either stage is ``image`` (real embeddings) or ``substitute`` (an alignment
method's output), which gives ReVision (sub → image), fully text-only (sub → sub), the paired upper
bound (image → image) and no-stage-1 (``init_from=None``) from the same code.

The loss is the sum over answer tokens divided by the answer-token count of the whole optimiser
step (all micro-batches on all processes), so 1 process × batch B equals P processes × B/P.
Checkpoints: ``save_state`` every ``save_every`` steps into a temporary folder renamed when complete;
a rerun resumes from the newest complete one. ``DONE.json`` is written last.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import platform
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modgap.errors import ModgapError
from modgap.io import atomic_path, read_json, sha256_file, write_json_atomic, write_text_atomic
from modgap.mllm.config import MLLMConfig, StageConfig
from modgap.mllm.data import (
    Collator,
    EmbeddingTable,
    Example,
    MLLMInputError,
    VisualInstructionDataset,
    caption_examples,
    load_manifest,
    visual_table,
)
from modgap.mllm.instructions import build_instructions
from modgap.mllm.model import Projector, VisualLM, trainable_state_dict
from modgap.provenance import environment

log = logging.getLogger(__name__)

CKPT_RE = re.compile(r"^step-(\d{6,})$")
DONE = "DONE.json"
META = "mllm.json"


def _check_init_from(init_from: str | Path | None) -> Path | None:
    if init_from is None or str(init_from).lower() == "none":
        return None
    path = Path(init_from)
    if not (path / DONE).is_file() or not (path / "projector.safetensors").is_file():
        raise MLLMInputError(f"--init-from {path}: not a completed stage folder (no {DONE} or projector)")
    return path


def _examples(cfg: MLLMConfig, stage: int, manifest_path: str | Path, table: EmbeddingTable) -> list[Example]:
    manifest = load_manifest(manifest_path, cfg.split)
    if stage == 1:
        examples = caption_examples(manifest, table.ids)
    else:
        ins = cfg.instructions
        examples = [
            Example(i.id, i.question, i.answer)
            for i in build_instructions(
                manifest,
                tasks=ins.tasks,
                seed=ins.seed,
                choices=ins.choices,
                negatives_per_item=ins.negatives_per_item,
                label_style=ins.label_style,
                negatives=ins.negatives,
            )
        ]
        table.rows([e.id for e in examples])  # fail now if an instruction's item has no embedding
    sc = cfg.stage(stage)
    if sc.max_samples is not None and sc.max_samples < len(examples):
        keep = np.sort(np.random.default_rng(cfg.seed).choice(len(examples), sc.max_samples, replace=False))
        examples = [examples[i] for i in keep]
    if not examples:
        raise MLLMInputError(f"stage {stage}: no training examples")
    return examples


def _order(n: int, steps: int, global_batch: int, steps_per_epoch: int, seed: int) -> list[int]:
    """Sample order for the whole run: a seeded permutation per epoch, cut to whole optimiser steps."""
    out: list[int] = []
    epoch = 0
    while len(out) < steps * global_batch:
        perm = np.random.default_rng([seed, epoch]).permutation(n)[: steps_per_epoch * global_batch]
        out.extend(int(i) for i in perm)
        epoch += 1
    return out[: steps * global_batch]


def _latest_checkpoint(ckpt_root: Path) -> Path | None:
    found = [(int(m.group(1)), p) for p in ckpt_root.glob("step-*") if (m := CKPT_RE.match(p.name))]
    found = [(s, p) for s, p in found if (p / "modgap_step.json").is_file()]
    return max(found)[1] if found else None


def _plot(rows: list[dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=1.2)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss (answer tokens)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def _write_loss_csv(rows: list[dict[str, float]], path: Path) -> None:
    buf = io.StringIO()
    fields = ["step", "loss", "lr", "tokens", "seconds", "cpu_seconds"]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def _setup_trainable(llm: Any, sc: StageConfig) -> Any:
    if sc.finetune == "projector":
        llm.requires_grad_(False)
        return llm
    if sc.finetune == "lora":
        from peft import LoraConfig, get_peft_model

        lc = sc.lora
        return get_peft_model(
            llm,
            LoraConfig(
                r=lc.r,
                lora_alpha=lc.alpha,
                lora_dropout=lc.dropout,
                target_modules=list(lc.target_modules),
                task_type="CAUSAL_LM",
            ),
        )
    llm.requires_grad_(True)
    return llm


def _save_final(accelerator: Any, model: Any, sc: StageConfig, out_dir: Path) -> list[str]:
    """Projector always; the fine-tuned LLM (full) or adapter (LoRA) in stage 2. Returns what was written."""
    from safetensors.torch import save_file

    state = accelerator.get_state_dict(model)  # gathers ZeRO-3/FSDP shards; main process gets all
    if not accelerator.is_main_process:
        return []
    unwrapped = accelerator.unwrap_model(model)
    proj = {k[len("projector.") :]: v.contiguous() for k, v in state.items() if k.startswith("projector.")}
    with atomic_path(out_dir / "projector.safetensors") as tmp:
        save_file(proj, str(tmp))
    written = ["projector.safetensors"]
    if sc.finetune in ("full", "lora"):
        name = "llm" if sc.finetune == "full" else "adapter"
        llm_state = {k[len("llm.") :]: v for k, v in state.items() if k.startswith("llm.")}
        if sc.finetune == "lora":  # PEFT expects its own key layout; it saves only adapter weights
            llm_state = None
        tmp_dir = out_dir / f".{name}.partial"
        shutil.rmtree(tmp_dir, ignore_errors=True)
        unwrapped.llm.save_pretrained(tmp_dir, state_dict=llm_state, safe_serialization=True)
        shutil.rmtree(out_dir / name, ignore_errors=True)
        os.replace(tmp_dir, out_dir / name)
        written.append(name)
    return written


def train_stage(
    cfg: MLLMConfig,
    stage: int,
    *,
    manifest: str | Path,
    embeddings_root: str | Path,
    out_dir: str | Path,
    visual: str | None = None,
    substitutes: str | Path | None = None,
    init_from: str | Path | None = None,
    stop_after_steps: int | None = None,
) -> dict[str, Any]:
    """Train one stage into ``out_dir`` (resuming if it holds checkpoints) and return the summary.

    ``visual`` defaults to ``substitute`` for stage 1 and ``image`` for stage 2.
    ``stop_after_steps`` simulates a killed run (tests): it returns without a completion marker.
    Steps: validate the inputs, build the model, the data order and the optimiser (in this order:
    the seeded initialisations depend on it), resume from the latest checkpoint, train, write.
    """
    t_start = time.time()
    sc = cfg.stage(stage)
    visual = visual or ("substitute" if stage == 1 else "image")
    out = Path(out_dir)
    if (out / DONE).is_file():
        log.info("%s exists: stage already complete", out / DONE)
        return read_json(out / DONE)

    # Validate every input before touching the LLM or starting a step.
    table = visual_table(visual, embeddings_root=embeddings_root, split=cfg.split, substitutes=substitutes)
    init_dir = _check_init_from(init_from)
    examples = _examples(cfg, stage, manifest, table)

    accelerator = _accelerator(cfg, sc, out)
    model, tokenizer, llm_info = _build_model(cfg, sc, table, init_dir)
    run = _prepare(accelerator, cfg, sc, stage, model, examples, table, tokenizer)
    _register_checkpoint_hooks(accelerator)
    ckpt_root = out / "checkpoints"
    start_step, rows = _resume(accelerator, ckpt_root, stage, run.total_steps)
    stopped = _train_loop(accelerator, sc, stage, run, ckpt_root, start_step, rows, stop_after_steps)
    if stopped is not None:
        return {"stopped_at": stopped}

    written = _save_final(accelerator, run.model, sc, out)
    if accelerator.is_main_process:
        _write_stage_outputs(
            accelerator,
            cfg,
            sc,
            stage,
            run,
            out,
            rows,
            written,
            visual=visual,
            table=table,
            llm_info=llm_info,
            init_dir=init_dir,
            manifest=manifest,
            t_start=t_start,
        )
        shutil.rmtree(ckpt_root, ignore_errors=True)  # finished: checkpoints are no longer needed
    accelerator.wait_for_everyone()
    return read_json(out / DONE)


@dataclass
class _PreparedRun:
    """What the training loop needs, after ``accelerator.prepare``."""

    model: Any
    optimizer: Any
    loader: Any
    scheduler: Any
    params: list[Any]
    examples: int
    world: int
    global_batch: int
    total_steps: int


def _accelerator(cfg: MLLMConfig, sc: StageConfig, out: Path) -> Any:
    """The Accelerator (CPU gloo ranks without CUDA), with the run's seed and thread count set."""
    from accelerate import Accelerator
    from accelerate.utils import GradientAccumulationPlugin, ProjectConfiguration, set_seed

    accelerator = Accelerator(
        # Without CUDA, ranks started by torchrun/`accelerate launch --multi_gpu` become gloo CPU ranks.
        cpu=not torch.cuda.is_available(),
        # "no" leaves the choice to the launch config (accelerate launch --mixed_precision / its YAML).
        mixed_precision=None if sc.mixed_precision == "no" else sc.mixed_precision,
        gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=sc.grad_accum, sync_with_dataloader=False),
        step_scheduler_with_optimizer=False,  # stepped by hand once per optimiser step
        project_config=ProjectConfiguration(project_dir=str(out), automatic_checkpoint_naming=False),
    )
    set_seed(cfg.seed)
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    return accelerator


def _build_model(
    cfg: MLLMConfig, sc: StageConfig, table: EmbeddingTable, init_dir: Path | None
) -> tuple[VisualLM, Any, dict[str, Any]]:
    """The LLM, its projector (initialised, or loaded from ``init_dir``) and what is trainable."""
    from modgap.mllm.llm import load_llm

    llm, tokenizer, llm_info = load_llm(
        cfg.llm.source,
        gguf_file=cfg.llm.gguf_file,
        cache_dir=cfg.llm.cache_dir,
        dtype=cfg.llm.dtype,
        attn_implementation=cfg.llm.attn_implementation,
    )
    projector = Projector(table.dim, llm.config.hidden_size, cfg.visual_tokens, cfg.visual_token_mode)
    if init_dir is not None:
        from safetensors.torch import load_file

        meta = read_json(init_dir / META)
        if (meta["embed_dim"], meta["hidden_size"], meta["visual_tokens"], meta["visual_token_mode"]) != (
            table.dim,
            llm.config.hidden_size,
            cfg.visual_tokens,
            cfg.visual_token_mode,
        ):
            raise MLLMInputError(f"--init-from {init_dir}: projector shape/mode differs from this config")
        projector.load_state_dict(load_file(str(init_dir / "projector.safetensors")))
    if sc.gradient_checkpointing:
        llm.gradient_checkpointing_enable()
    llm = _setup_trainable(llm, sc)
    return VisualLM(llm, projector), tokenizer, llm_info


def _prepare(
    accelerator: Any,
    cfg: MLLMConfig,
    sc: StageConfig,
    stage: int,
    model: VisualLM,
    examples: list[Example],
    table: EmbeddingTable,
    tokenizer: Any,
) -> _PreparedRun:
    """The seeded example order over the run's steps, the optimiser and schedule, all prepared."""
    from transformers import get_scheduler

    dataset = VisualInstructionDataset(
        examples,
        table,
        tokenizer,
        template=sc.template,
        num_visual=cfg.visual_tokens,
        system_prompt=cfg.llm.system_prompt,
        max_length=sc.max_length,
    )
    world = accelerator.num_processes
    global_batch = sc.per_device_batch_size * sc.grad_accum * world
    steps_per_epoch = len(dataset) // global_batch
    if steps_per_epoch == 0:
        raise ModgapError(f"stage {stage}: {len(dataset)} examples < one global batch of {global_batch}")
    total_steps = steps_per_epoch * sc.epochs
    if sc.max_steps is not None:
        total_steps = min(total_steps, sc.max_steps)
    order = _order(len(dataset), total_steps, global_batch, steps_per_epoch, cfg.seed)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, order),
        batch_size=sc.per_device_batch_size,
        shuffle=False,
        collate_fn=Collator(tokenizer.pad_token_id),
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(_param_groups(model, sc), lr=sc.lr, weight_decay=sc.weight_decay)
    scheduler = get_scheduler(
        sc.scheduler,
        optimizer,
        num_warmup_steps=math.ceil(sc.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    return _PreparedRun(model, optimizer, loader, scheduler, params, len(dataset), world, global_batch, total_steps)


def _param_groups(model: VisualLM, sc: StageConfig) -> list[dict[str, Any]]:
    """The projector at ``projector_lr`` (when set) and every other trainable weight at ``lr``."""
    projector = [p for p in model.projector.parameters() if p.requires_grad]
    own = {id(p) for p in projector}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in own]
    groups = [{"params": projector, "lr": sc.projector_lr or sc.lr}]
    return groups + ([{"params": rest, "lr": sc.lr}] if rest else [])


def _register_checkpoint_hooks(accelerator: Any) -> None:
    """Checkpoints hold only trainable weights (stage 1: the projector, not 135M frozen LLM weights).
    DeepSpeed/FSDP save and load their own (sharded) model state, so the hooks leave them alone."""
    from accelerate.utils import DistributedType

    own_format = accelerator.distributed_type in (DistributedType.DEEPSPEED, DistributedType.FSDP)

    def save_hook(models: list[Any], weights: list[dict[str, Any]], _dir: str) -> None:
        for i, m in enumerate(models[: len(weights)]):
            weights[i] = trainable_state_dict(accelerator.unwrap_model(m))

    def load_hook(models: list[Any], in_dir: str) -> None:
        from safetensors.torch import load_file

        if own_format:
            return
        for i in range(len(models)):
            m = models.pop()
            fname = "model.safetensors" if i == 0 else f"model_{i}.safetensors"
            missing = accelerator.unwrap_model(m).load_state_dict(load_file(os.path.join(in_dir, fname)), strict=False)
            if missing.unexpected_keys:
                raise ModgapError(f"checkpoint {in_dir}: unexpected keys {missing.unexpected_keys[:3]}")

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def _resume(accelerator: Any, ckpt_root: Path, stage: int, total_steps: int) -> tuple[int, list[dict[str, float]]]:
    """(first step to run, loss rows so far): from the latest complete checkpoint, or (0, [])."""
    if accelerator.is_main_process:
        for stale in ckpt_root.glob(".partial-*"):
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    latest = _latest_checkpoint(ckpt_root)
    if latest is None:
        return 0, []
    accelerator.load_state(str(latest))
    state = read_json(latest / "modgap_step.json")
    log.info("resuming stage %d from %s (step %d/%d)", stage, latest, int(state["step"]), total_steps)
    return int(state["step"]), list(state["rows"])


def _checkpoint(accelerator: Any, ckpt_root: Path, step: int, rows: list[dict[str, float]], keep: int) -> None:
    """Save into a partial folder, then rename: a kill never leaves a checkpoint that looks complete."""
    partial = ckpt_root / f".partial-step-{step:06d}"
    accelerator.save_state(str(partial))
    if accelerator.is_main_process:
        write_json_atomic(partial / "modgap_step.json", {"step": step, "rows": rows})
        os.replace(partial, ckpt_root / f"step-{step:06d}")
        done = sorted(p for p in ckpt_root.glob("step-*") if CKPT_RE.match(p.name))
        for old in done[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _train_loop(
    accelerator: Any,
    sc: StageConfig,
    stage: int,
    run: _PreparedRun,
    ckpt_root: Path,
    start_step: int,
    rows: list[dict[str, float]],
    stop_after_steps: int | None,
) -> int | None:
    """Run the remaining optimiser steps, appending one row each; the step stopped at, if stopped early."""
    from tqdm.auto import tqdm

    loader = run.loader
    batches = iter(accelerator.skip_first_batches(loader, start_step * sc.grad_accum) if start_step else loader)
    run.model.train()
    bar = tqdm(
        total=run.total_steps, initial=start_step, desc=f"stage {stage}", disable=not accelerator.is_local_main_process
    )
    for step in range(start_step, run.total_steps):
        rows.append(_train_step(accelerator, sc, stage, run, batches, step))
        bar.update(1)
        bar.set_postfix(loss=f"{rows[-1]['loss']:.3f}")
        if (step + 1) % sc.save_every == 0 and step + 1 < run.total_steps:
            _checkpoint(accelerator, ckpt_root, step + 1, rows, sc.keep_checkpoints)
        if stop_after_steps is not None and step + 1 >= stop_after_steps:
            bar.close()
            return step + 1
    bar.close()
    return None


def _train_step(
    accelerator: Any, sc: StageConfig, stage: int, run: _PreparedRun, batches: Any, step: int
) -> dict[str, float]:
    """One optimiser step over ``grad_accum`` micro-batches; its loss row."""
    t0, c0 = time.time(), time.process_time()
    micro = [next(batches) for _ in range(sc.grad_accum)]
    local = sum((b["labels"][:, 1:] != -100).sum() for b in micro)
    total_tokens = accelerator.reduce(torch.as_tensor(local, device=accelerator.device), "sum").clamp(min=1)
    step_loss = torch.zeros((), device=accelerator.device)
    for batch in micro:
        with accelerator.accumulate(run.model):
            result = run.model(**batch)
            # DDP averages over processes and accelerate divides by grad_accum: undo both so the
            # gradient is d(sum of token losses)/d(theta) / (answer tokens in the whole step).
            accelerator.backward(result["loss_sum"] * (run.world * sc.grad_accum) / total_tokens)
            if accelerator.sync_gradients and sc.max_grad_norm:
                accelerator.clip_grad_norm_(run.params, sc.max_grad_norm)
            run.optimizer.step()
            run.optimizer.zero_grad()
        step_loss += result["loss_sum"].detach().float()
    lr = float(run.scheduler.get_last_lr()[0])  # the rate this step used
    run.scheduler.step()
    loss = float(accelerator.reduce(step_loss, "sum") / total_tokens)
    if not math.isfinite(loss):
        raise ModgapError(f"stage {stage}: loss became {loss} at step {step + 1}")
    return {
        "step": step + 1,
        "loss": loss,
        "lr": lr,
        "tokens": int(total_tokens),
        "seconds": round(time.time() - t0, 4),
        "cpu_seconds": round(time.process_time() - c0, 4),
    }


def _write_stage_outputs(
    accelerator: Any,
    cfg: MLLMConfig,
    sc: StageConfig,
    stage: int,
    run: _PreparedRun,
    out: Path,
    rows: list[dict[str, float]],
    written: list[str],
    *,
    visual: str,
    table: EmbeddingTable,
    llm_info: dict[str, Any],
    init_dir: Path | None,
    manifest: str | Path,
    t_start: float,
) -> None:
    """mllm.json, loss.csv, loss.png, then DONE.json, the completion marker (main process only)."""
    meta = {
        "stage": stage,
        "template": sc.template,
        "finetune": sc.finetune,
        "visual": visual,
        "embed_dim": table.dim,
        "hidden_size": int(accelerator.unwrap_model(run.model).llm.config.hidden_size),
        "visual_tokens": cfg.visual_tokens,
        "visual_token_mode": cfg.visual_token_mode,
        "llm": asdict(cfg.llm),
        "llm_provenance": llm_info,
        "init_from": str(init_dir) if init_dir else None,
        "config": cfg.to_dict(),
    }
    write_json_atomic(out / META, meta)
    _write_loss_csv(rows, out / "loss.csv")
    _plot(rows, out / "loss.png", f"stage {stage} ({visual}, {sc.finetune}) — {out}")
    summary = {
        "stage": stage,
        "steps": run.total_steps,
        "examples": run.examples,
        "global_batch": run.global_batch,
        "final_loss": rows[-1]["loss"],
        "first_loss": rows[0]["loss"],
        "files": written,
        "processes": run.world,
        "mixed_precision": str(accelerator.mixed_precision),
        "wall_seconds": round(time.time() - t_start, 2),
        "inputs": {
            "manifest": str(manifest),
            "visual_file": str(table.path),
            "visual_sha256": sha256_file(table.path),
        },
        "versions": _versions(),
        "environment": environment(),
    }
    write_json_atomic(out / DONE, summary)  # completion marker, written after every output


def _versions() -> dict[str, str]:
    import accelerate
    import transformers

    from modgap import __version__

    return {
        "modgap": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "python": platform.python_version(),
    }
