"""The Bunny ``llama`` chat template ([RA] Stage 2; ``BAAI-DCAI/Bunny`` ``conv_llama`` as used by ``Yu-xm/ReVision``).

Bunny renders a conversation with ``SeparatorStyle.TWO``: the system line, a space, then
``USER: <image>\\n{question}`` + ``" "`` and ``ASSISTANT: {answer}`` + ``<|end_of_text|>``, after the
tokenizer's BOS (``preprocess_bunny_with_bos``). Its labels mask everything up to and including
``ASSISTANT:`` and cover `` {answer}`` and the ``<|end_of_text|>`` token; so here the prompt ends at
``ASSISTANT:`` and the answer text is ``" {answer}<|end_of_text|>"``.

The Stage-1 template, ``plain``, lives in :mod:`modgap.mllm.data` (unchanged). Bunny's own ``plain``
also starts with the tokenizer's BOS; ours does not (recorded in the README's paper-tier notes).
"""

from __future__ import annotations

from typing import Any

from modgap.errors import ModgapError

LLAMA = "llama"
TEMPLATES = (LLAMA,)
SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
ROLES = ("USER", "ASSISTANT")
SEP = " "
END = "<|end_of_text|>"  # Bunny's sep2 for llama; the authors also force eos to its id (128001)


def end_token_id(tokenizer: Any) -> int:
    """The id of :data:`END`; the template is for Llama-3 tokenizers, where it is one special token."""
    ids = tokenizer(END, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ModgapError(
            f"template {LLAMA!r} needs {END} as one token of the tokenizer (Llama-3); "
            f"{type(tokenizer).__name__} splits it into {len(ids)}"
        )
    return int(ids[0])


def prompt_text(
    tokenizer: Any, question: str | None, image_marker: str, system_prompt: str | None, with_image: bool
) -> str:
    """``<bos>{system} USER: <image>\\n{question} ASSISTANT:`` (no image: ``USER: {question}``)."""
    user = f"{image_marker}\n{question}" if with_image else str(question)
    bos = tokenizer.bos_token or ""
    return f"{bos}{system_prompt or SYSTEM}{SEP}{ROLES[0]}: {user}{SEP}{ROLES[1]}:"


def answer_text(tokenizer: Any, answer: str) -> str:
    end_token_id(tokenizer)  # fail early, naming the template, if the tokenizer lacks the end token
    return f" {answer}{END}"


def stop_token_ids(tokenizer: Any, template: str) -> int | list[int]:
    """What greedy decoding stops at: eos, and for ``llama`` also :data:`END` (the trained turn end)."""
    if template != LLAMA:
        return tokenizer.eos_token_id
    ids = [tokenizer.eos_token_id, end_token_id(tokenizer)]
    return sorted({i for i in ids if i is not None})
