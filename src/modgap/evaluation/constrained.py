"""Constrained choice for rule-scored benchmarks: the option with the highest next-token log-probability.

Greedy free text from an untrained or blind model often contains neither "yes" nor "no" nor a letter;
scoring those answers as wrong turns a parse failure into a below-chance accuracy (a base LLM at
POPE 0.065 where always answering "no" scores 0.5). Here every answer is one of the options, the
choice lmms-eval makes with log-likelihood scoring of single-token answers: the log-sum-exp over the
spellings of each option's first token ("Yes", " yes", ...), after the same prompt ``generate`` builds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from modgap.errors import ModgapError


def spellings(tokenizer: Any, option: str) -> list[int]:
    """First-token ids of the option's usual spellings (case, leading space): the model may put its
    probability on any of them."""
    ids: set[int] = set()
    for text in {option, option.lower(), option.capitalize(), option.upper()}:
        for variant in (text, " " + text):
            encoded = tokenizer(variant, add_special_tokens=False)["input_ids"]
            if encoded:
                ids.add(int(encoded[0]))
    return sorted(ids)


def pick(logprobs: np.ndarray, option_ids: Sequence[Sequence[int]]) -> tuple[int, list[float]]:
    """Index of the best option by log-sum-exp of its spellings' log-probabilities, and the scores."""
    scores = [float(np.logaddexp.reduce(logprobs[list(ids)])) if ids else -np.inf for ids in option_ids]
    return int(np.argmax(scores)), scores


def choose(
    mllm: Any,
    embeddings: Any,
    prompts: Sequence[str],
    options: Sequence[Sequence[str]],
    *,
    batch_size: int = 16,
    template: str | None = None,
    on_batch: Callable[[int], Any] | None = None,
) -> list[str]:
    """One forward pass per batch; returns, per prompt, the option with the highest log-probability."""
    import torch

    from modgap.mllm.data import encode_prompt, prompt_text

    template = template or mllm.template
    model, tok = mllm.model, mllm.tokenizer
    device = next(model.parameters()).device
    out: list[str] = []
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start : start + batch_size]
            encoded = [
                encode_prompt(
                    tok, prompt_text(tok, template, q, mllm.system_prompt, embeddings is not None), mllm.num_visual
                )
                for q in chunk
            ]
            if any(not ids for ids, _ in encoded):
                raise ModgapError("choose: empty prompt (the plain template needs visual tokens)")
            width = max(len(ids) for ids, _ in encoded)
            input_ids = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
            image_mask = torch.zeros((len(chunk), width), dtype=torch.bool)
            attention = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, (ids, mask) in enumerate(encoded):  # left padding: the last position is the prompt's end
                input_ids[row, width - len(ids) :] = torch.tensor(ids)
                image_mask[row, width - len(ids) :] = torch.tensor(mask)
                attention[row, width - len(ids) :] = 1
            emb = None
            if embeddings is not None:
                emb = torch.as_tensor(np.asarray(embeddings[start : start + batch_size]), dtype=torch.float32).to(
                    device
                )
            inputs_embeds = model.embed_inputs(input_ids.to(device), image_mask.to(device), emb)
            logits = model.llm(inputs_embeds=inputs_embeds, attention_mask=attention.to(device)).logits[:, -1, :]
            logprobs = torch.log_softmax(logits.float(), dim=-1).cpu().numpy()
            for row, opts in enumerate(options[start : start + batch_size]):
                best, _ = pick(logprobs[row], [spellings(tok, o) for o in opts])
                out.append(opts[best])
            if on_batch is not None:  # progress: rows done
                on_batch(len(chunk))
    return out
