"""Load a trained stage folder and decode greedily (batched, deterministic) for evaluation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modgap.errors import ModgapError
from modgap.io import read_json
from modgap.mllm.bunny import stop_token_ids
from modgap.mllm.data import encode_prompt, prompt_text
from modgap.mllm.model import Projector, VisualLM


@dataclass
class LoadedMLLM:
    model: VisualLM
    tokenizer: Any
    template: str  # the template the stage was trained with (plain after stage 1, chat after stage 2)
    system_prompt: str | None
    meta: dict[str, Any]

    @property
    def num_visual(self) -> int:
        return self.model.projector.num_tokens


def load_mllm(stage_dir: str | Path, *, device: str | torch.device = "cpu") -> LoadedMLLM:
    """Rebuild the model of a completed stage folder: base LLM (+ fine-tuned weights or adapter)."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from modgap.mllm.llm import load_recorded_llm

    stage_dir = Path(stage_dir)
    if not (stage_dir / "DONE.json").is_file():
        raise ModgapError(f"{stage_dir}: no DONE.json; the stage did not complete")
    meta = read_json(stage_dir / "mllm.json")
    lc = meta["llm"]
    llm, tokenizer, _ = load_recorded_llm(lc)
    if (stage_dir / "llm").is_dir():
        llm = AutoModelForCausalLM.from_pretrained(stage_dir / "llm", dtype=llm.dtype)
    elif (stage_dir / "adapter").is_dir():
        from peft import PeftModel

        llm = PeftModel.from_pretrained(llm, stage_dir / "adapter").merge_and_unload()
    projector = Projector(meta["embed_dim"], meta["hidden_size"], meta["visual_tokens"], meta["visual_token_mode"])
    projector.load_state_dict(load_file(str(stage_dir / "projector.safetensors")))
    model = VisualLM(llm, projector).to(device).eval()
    return LoadedMLLM(model, tokenizer, meta["template"], lc.get("system_prompt"), meta)


@torch.no_grad()
def generate(
    mllm: LoadedMLLM,
    embeddings: np.ndarray | torch.Tensor | None,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 32,
    batch_size: int = 16,
    template: str | None = None,
    on_batch: Callable[[int], Any] | None = None,
) -> list[str]:
    """Greedy answers to ``prompts``, one per row of ``embeddings`` (``None``: no visual tokens,
    the blind-B2 ablation). Prompts are left-padded; decoding stops at eos (and at a newline for
    the ``plain`` template, whose training target ends with one). ``on_batch(rows)`` is called
    after each batch (a progress bar's update)."""
    template = template or mllm.template
    model, tok = mllm.model, mllm.tokenizer
    if embeddings is not None and len(embeddings) != len(prompts):
        raise ModgapError(f"generate: {len(embeddings)} embeddings for {len(prompts)} prompts")
    device = next(model.parameters()).device
    outputs: list[str] = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        encoded = [
            encode_prompt(
                tok, prompt_text(tok, template, q, mllm.system_prompt, embeddings is not None), mllm.num_visual
            )
            for q in chunk
        ]
        if any(not ids for ids, _ in encoded):
            raise ModgapError("generate: empty prompt (the plain template needs visual tokens)")
        width = max(len(ids) for ids, _ in encoded)
        input_ids = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
        image_mask = torch.zeros((len(chunk), width), dtype=torch.bool)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (ids, mask) in enumerate(encoded):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            image_mask[row, width - len(ids) :] = torch.tensor(mask)
            attention[row, width - len(ids) :] = 1
        emb = None
        if embeddings is not None:
            emb = torch.as_tensor(np.asarray(embeddings[start : start + batch_size]), dtype=torch.float32).to(device)
        inputs_embeds = model.embed_inputs(input_ids.to(device), image_mask.to(device), emb)
        extra: dict[str, Any] = {"stop_strings": ["\n"], "tokenizer": tok} if template == "plain" else {}
        new = model.llm.generate(
            inputs_embeds=inputs_embeds,
            attention_mask=attention.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=stop_token_ids(tok, template),  # tok.eos_token_id except for llama
            pad_token_id=tok.pad_token_id,
            **extra,
        )
        for row in new:
            text = tok.decode(row, skip_special_tokens=True)
            outputs.append(text.split("\n")[0].strip() if template == "plain" else text.strip())
        if on_batch is not None:  # progress: rows done
            on_batch(len(chunk))
    return outputs
