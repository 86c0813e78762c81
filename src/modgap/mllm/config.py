"""MLLM configuration: one JSON/YAML mapping, validated into dataclasses with key-naming errors.

The embedded-tier default lives in ``presets/embedded.yaml``; the paper-tier presets
(``paper-1gpu.yaml``, ``paper-8gpu.yaml``) mirror the papers' hyper-parameters ([RA] App. H.2,
``Yu-xm/ReVision`` scripts): LR 5e-4 / 1e-5, global batch 256, cosine, warmup 0.03, 1 epoch.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modgap.errors import ConfigError

PRESETS_DIR = Path(__file__).parent / "presets"


@dataclass
class LLMConfig:
    source: str = "smollm2-135m-instruct"  # alias, HF id, model folder or .gguf path
    gguf_file: str | None = None
    cache_dir: str | None = None  # where a dequantised GGUF is cached (default ~/.cache/modgap/llm)
    dtype: str = "float32"  # weights' dtype; bf16 compute comes from accelerate's mixed_precision
    attn_implementation: str | None = None
    system_prompt: str | None = None  # None keeps the chat template's own default system turn


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


@dataclass
class StageConfig:
    lr: float = 1e-3
    per_device_batch_size: int = 8
    grad_accum: int = 1
    epochs: int = 1
    max_steps: int | None = None  # caps optimiser steps (the CPU tier); None = whole epochs
    max_samples: int | None = None  # use a seeded subset of the training examples (R5-style fractions)
    warmup_ratio: float = 0.03
    scheduler: str = "cosine"  # any transformers.get_scheduler name
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    max_length: int = 128  # tokens incl. the visual tokens; longer examples are truncated
    save_every: int = 50  # optimiser steps between save_state checkpoints
    keep_checkpoints: int = 2
    finetune: str = "projector"  # projector | full | lora
    lora: LoraSettings = field(default_factory=LoraSettings)
    template: str = "plain"  # plain (caption reconstruction, [RA] stage 1) | chat (the LLM's template)
    gradient_checkpointing: bool = False
    # The projector's own learning rate (None: ``lr``). With a LoRA or full LLM update at 1e-4..5e-5
    # the projector otherwise barely moves (< 1 % of its weights in 30 steps, benchmarks/RESULTS.md).
    projector_lr: float | None = None
    # accelerate's mixed precision for this stage: no | bf16 | fp16. On a CPU bf16 autocast is 1.5-1.8x
    # faster than fp32 with native bf16 (avx512_bf16) and ~30x slower without it (emulated, AVX2 only).
    mixed_precision: str = "no"


@dataclass
class InstructionConfig:
    tasks: list[str] = field(default_factory=lambda: ["caption", "yesno", "choice", "short"])
    seed: int = 0
    choices: int = 4
    negatives_per_item: int = 1  # yes/no questions with a sampled absent label per item
    # How absent labels are drawn for yes/no negatives and multiple-choice distractors: ``frequency``
    # (in proportion to the label's training frequency, so that negatives are as common as positives
    # and a text-only "is this label frequent?" rule is at chance) | ``uniform`` (any absent label).
    negatives: str = "frequency"
    label_style: str = "leaf"  # leaf: last segment of hierarchical labels, words spaced | raw


@dataclass
class MLLMConfig:
    llm: LLMConfig = field(default_factory=LLMConfig)
    visual_tokens: int = 8  # N; 576 = the authors' fidelity setting
    visual_token_mode: str = "repeat"  # repeat: one projected vector N times (authors) | expand: N distinct
    seed: int = 0
    split: str = "train"
    torch_threads: int | None = None  # intra-op CPU threads; None keeps torch's default
    stage1: StageConfig = field(default_factory=StageConfig)
    stage2: StageConfig = field(default_factory=lambda: StageConfig(lr=1e-5, finetune="full", template="chat"))
    instructions: InstructionConfig = field(default_factory=InstructionConfig)

    def stage(self, n: int) -> StageConfig:
        if n not in (1, 2):
            raise ConfigError(f"stage must be 1 or 2, got {n}")
        return self.stage1 if n == 1 else self.stage2

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'mllm config'}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where or 'mllm config'}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        sub = _NESTED.get((cls, name))
        kwargs[name] = _build(sub, value, f"{where}{name}.") if sub is not None else value
    return cls(**kwargs)


_NESTED: dict[tuple[type, str], type] = {
    (MLLMConfig, "llm"): LLMConfig,
    (MLLMConfig, "stage1"): StageConfig,
    (MLLMConfig, "stage2"): StageConfig,
    (MLLMConfig, "instructions"): InstructionConfig,
    (StageConfig, "lora"): LoraSettings,
}


def validate(cfg: MLLMConfig) -> MLLMConfig:
    if cfg.visual_tokens < 1:
        raise ConfigError("visual_tokens must be >= 1")
    if cfg.visual_token_mode not in ("repeat", "expand"):
        raise ConfigError(f"visual_token_mode must be 'repeat' or 'expand', got {cfg.visual_token_mode!r}")
    for n in (1, 2):
        s = cfg.stage(n)
        if s.finetune not in ("projector", "full", "lora"):
            raise ConfigError(f"stage{n}.finetune must be projector|full|lora, got {s.finetune!r}")
        if s.template not in ("plain", "chat", "llama"):  # llama: Bunny's template (modgap.mllm.bunny)
            raise ConfigError(f"stage{n}.template must be plain|chat|llama, got {s.template!r}")
        for key in ("per_device_batch_size", "grad_accum", "epochs", "save_every", "keep_checkpoints"):
            if getattr(s, key) < 1:
                raise ConfigError(f"stage{n}.{key} must be >= 1")
        if s.mixed_precision not in ("no", "bf16", "fp16"):
            raise ConfigError(f"stage{n}.mixed_precision must be no|bf16|fp16, got {s.mixed_precision!r}")
        if s.projector_lr is not None and s.projector_lr <= 0:
            raise ConfigError(f"stage{n}.projector_lr must be > 0 or null")
        if s.max_length <= cfg.visual_tokens + 4:
            raise ConfigError(f"stage{n}.max_length must exceed visual_tokens + 4")
    if cfg.instructions.negatives not in ("frequency", "uniform"):
        raise ConfigError(f"instructions.negatives must be frequency|uniform, got {cfg.instructions.negatives!r}")
    unknown_tasks = set(cfg.instructions.tasks) - {"caption", "yesno", "choice", "short"}
    if unknown_tasks:
        raise ConfigError(f"instructions.tasks: unknown task(s) {sorted(unknown_tasks)}")
    return cfg


def config_from_dict(data: dict[str, Any]) -> MLLMConfig:
    return validate(_build(MLLMConfig, data, ""))


def load_config(spec: str | Path | dict[str, Any] | None) -> MLLMConfig:
    """Load a config from a dict, inline JSON, a ``.json``/``.yaml`` path or a preset name."""
    if spec is None:
        spec = "embedded"
    if isinstance(spec, dict):
        return config_from_dict(spec)
    text = str(spec)
    if text.lstrip().startswith("{"):
        return config_from_dict(json.loads(text))
    path = Path(text)
    if not path.exists() and (PRESETS_DIR / f"{text}.yaml").is_file():
        path = PRESETS_DIR / f"{text}.yaml"
    if not path.is_file():
        raise ConfigError(f"mllm config {text!r}: no such file or preset ({sorted(preset_names())})")
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh) if path.suffix == ".json" else yaml.safe_load(fh)
    return config_from_dict(data or {})


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
