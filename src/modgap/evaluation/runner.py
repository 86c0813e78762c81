"""Decode one model over the benchmark suite under one visual condition and log every sample.

Visual conditions ([spec] revision-mllm §11.4 blind baselines):
- ``image``: the item's real image embedding;
- ``blind``: no visual tokens at all (B2 for a trained MLLM, B1 for the base LLM);
- ``mean``: every item gets µ_x, the mean image embedding of the evaluated split (B3);
- ``shuffled``: every item gets another item's image (a fixed derangement, B3).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modgap.errors import ConfigError
from modgap.evaluation.items import BenchItem
from modgap.evaluation.score import is_correct, parse_record
from modgap.evaluation.tasks import registered_tasks, rule_scored_tasks

CONDITIONS = ("image", "blind", "mean", "shuffled")


def max_new_tokens_defaults() -> dict[str, int]:
    """Each registered task's default decoding length (``eval.max_new_tokens`` overrides it)."""
    return {t.name: t.max_new_tokens for t in registered_tasks()}


def visual_inputs(items: Sequence[BenchItem], condition: str, table: Any | None, *, seed: int = 0) -> np.ndarray | None:
    """One embedding row per item for ``condition`` (None for ``blind``). ``table`` is an
    :class:`~modgap.mllm.data.EmbeddingTable` of the evaluated split's images."""
    if condition not in CONDITIONS:
        raise ConfigError(f"eval condition must be one of {CONDITIONS}, got {condition!r}")
    if condition == "blind":
        return None
    if table is None:
        raise ConfigError(f"eval condition {condition!r} needs image embeddings")
    rows = table.rows([i.image_id for i in items])
    if condition == "mean":
        mean = table.array.mean(axis=0, dtype=np.float64).astype(np.float32)
        return np.broadcast_to(mean, rows.shape).copy()
    if condition == "shuffled":
        images = sorted({i.image_id for i in items})
        if len(images) < 2:
            raise ConfigError("eval condition 'shuffled' needs at least two images")
        shift = 1 + int(np.random.default_rng(seed).integers(len(images) - 1))  # a cyclic shift has no fixed point
        partner = {img: images[(k + shift) % len(images)] for k, img in enumerate(images)}
        return table.rows([partner[i.image_id] for i in items])
    return rows


# Under constrained scoring, POPE and MC are decided by option log-likelihoods; greedy text is only
# decoded for the first GENERATION_CHECK items of each such task, to report the free-text parse rate
# and how often the free answer agrees with the constrained one (generation was ~80 % of eval time).
GENERATION_CHECK = 16


def run_items(
    mllm: Any,
    items: Sequence[BenchItem],
    visual: np.ndarray | None,
    *,
    template: str | None = None,
    max_new_tokens: Mapping[str, int] | None = None,
    batch_size: int = 16,
    scoring: str = "free",
    generation_check: int = GENERATION_CHECK,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Answers for every item, parsed and scored, as per-sample records (item order).

    ``scoring='free'``: greedy answers, rule-parsed (unparsed counts as wrong). ``scoring='constrained'``:
    POPE and MC are scored by the option with the highest next-token log-probability (always one of
    the options, :mod:`modgap.evaluation.constrained`); greedy text is decoded only for the first
    ``generation_check`` items of each of those tasks, kept in ``output`` with its rule parse in
    ``parsed_free``; the other items have ``output`` None. Captions are always generated."""
    from tqdm.auto import tqdm

    from modgap.mllm.generate import generate

    if scoring not in ("free", "constrained"):
        raise ConfigError(f"eval scoring must be 'free' or 'constrained', got {scoring!r}")
    if generation_check < 0:
        raise ConfigError(f"eval generation_check must be >= 0, got {generation_check}")

    limits = {**max_new_tokens_defaults(), **(max_new_tokens or {})}
    constrained_tasks = {t.name for t in rule_scored_tasks()} if scoring == "constrained" else set()
    plan: dict[str, list[int]] = {}
    for task in dict.fromkeys(i.task for i in items):
        index = [k for k, i in enumerate(items) if i.task == task]
        plan[task] = index[:generation_check] if task in constrained_tasks else index
    total = sum(map(len, plan.values())) + sum(1 for i in items if i.task in constrained_tasks)
    outputs: dict[int, str] = {}
    chosen: dict[int, str] = {}
    with tqdm(total=total, desc="eval", unit="item", disable=not progress) as bar:
        for task, index in plan.items():
            if index:
                answers = generate(
                    mllm,
                    None if visual is None else visual[index],
                    [items[k].question for k in index],
                    max_new_tokens=limits[task],
                    batch_size=batch_size,
                    template=template,
                    on_batch=bar.update,
                )
                outputs.update(zip(index, answers, strict=True))
        if constrained_tasks:
            chosen = _constrained(mllm, items, visual, batch_size, template, on_batch=bar.update)
    records = []
    for k, item in enumerate(items):
        output = outputs.get(k)
        record: dict[str, Any] = {**item.to_json(), "output": output}
        if k in chosen:
            record["scoring"] = "constrained"
            if output is not None:
                record["parsed_free"] = parse_record(item.task, output, item.options)
            record["parsed"] = chosen[k]
        else:
            record["parsed"] = parse_record(item.task, str(output), item.options)
        record["correct"] = is_correct(item.task, record["parsed"], item.answer)
        records.append(record)
    return records


def _constrained(
    mllm: Any,
    items: Sequence[BenchItem],
    visual: np.ndarray | None,
    batch_size: int,
    template: str | None,
    on_batch: Callable[[int], Any] | None = None,
) -> dict[int, str]:
    """{item index: chosen option} for the rule-scored tasks (POPE, MC)."""
    from modgap.evaluation import constrained

    out: dict[int, str] = {}
    for task in rule_scored_tasks():
        index = [k for k, i in enumerate(items) if i.task == task.name]
        if not index:
            continue
        embeddings = None if visual is None else visual[index]
        options = [task.options(items[k].options) for k in index]
        answers = constrained.choose(
            mllm,
            embeddings,
            [items[k].question for k in index],
            options,
            batch_size=batch_size,
            template=template,
            on_batch=on_batch,
        )
        out.update(zip(index, answers, strict=True))
    return out


def load_base_llm(stage_dir: str | Path) -> Any:
    """The untrained base LLM a stage folder was built on, wrapped like a trained MLLM so the same
    decoding code runs it; it is only ever asked questions without visual tokens (B1)."""
    from modgap.io import read_json
    from modgap.mllm.generate import LoadedMLLM
    from modgap.mllm.llm import load_recorded_llm
    from modgap.mllm.model import Projector, VisualLM

    meta = read_json(Path(stage_dir) / "mllm.json")
    lc = meta["llm"]
    llm, tokenizer, _ = load_recorded_llm(lc)
    projector = Projector(meta["embed_dim"], meta["hidden_size"], meta["visual_tokens"], meta["visual_token_mode"])
    return LoadedMLLM(
        VisualLM(llm, projector).eval(), tokenizer, "chat", lc.get("system_prompt"), {**meta, "base_llm_only": True}
    )
