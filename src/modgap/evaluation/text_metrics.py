"""Captioning metrics through the COCO caption toolkit (pycocoevalcap): corpus BLEU-4 (Papineni et al.
2002) and CIDEr-D (Vedantam et al. 2015), on text tokenized by one fixed tokenizer, and category-mention
recall."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize(text: str) -> list[str]:
    """Lower-cased alphanumeric words (apostrophe contractions kept); punctuation dropped."""
    return _TOKEN.findall(text.lower())


def _coco_inputs(
    candidates: Mapping[str, str], references: Mapping[str, Sequence[str]]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The toolkit's (gts, res) dictionaries, every text already tokenized and space-joined (its
    own PTB tokenizer needs Java; :func:`tokenize` is the fixed stand-in)."""
    _same_keys(candidates, references)
    gts = {k: [" ".join(tokenize(r)) for r in references[k]] for k in candidates}
    res = {k: [" ".join(tokenize(candidates[k]))] for k in candidates}
    return gts, res


def bleu(candidates: Mapping[str, str], references: Mapping[str, Sequence[str]], max_n: int = 4) -> float:
    """Corpus-level BLEU-``max_n`` (pycocoevalcap's scorer: clipped n-gram precisions pooled over the
    corpus, brevity penalty against the closest reference length)."""
    from pycocoevalcap.bleu.bleu import Bleu

    if not candidates:
        return 0.0
    gts, res = _coco_inputs(candidates, references)
    if not any(r[0] for r in res.values()):
        return 0.0  # the toolkit divides by the candidate length
    scores, _ = Bleu(max_n).compute_score(gts, res, verbose=0)
    return float(scores[max_n - 1])


def cider_d(candidates: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> tuple[float, dict[str, float]]:
    """CIDEr-D (pycocoevalcap's ``Cider``, the COCO toolkit's CIDEr-D: clipped n-gram counts, Gaussian
    length penalty σ = 6, idf from the evaluated corpus's references, ×10): corpus mean and per-item
    scores. A corpus of one item scores 0 by design (every n-gram has document frequency 1 of 1)."""
    from pycocoevalcap.cider.cider import Cider

    if not candidates:
        return 0.0, {}
    gts, res = _coco_inputs(candidates, references)
    mean, per_item = Cider().compute_score(gts, res)
    return float(mean), {k: float(v) for k, v in zip(gts, per_item, strict=True)}


def mentions(caption: str, phrases: Sequence[str]) -> bool:
    """Whether the caption names one of ``phrases`` (all of a phrase's words, in order, as tokens)."""
    tokens = tokenize(caption)
    text = " " + " ".join(tokens) + " "
    return any(" " + " ".join(tokenize(p)) + " " in text for p in phrases if tokenize(p))


def _same_keys(candidates: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> None:
    if set(candidates) != set(references):
        missing = sorted(set(candidates) ^ set(references))[:5]
        raise ValueError(f"candidates and references must cover the same items; differing keys: {missing}")
    if any(not references[k] for k in references):
        raise ValueError("every item needs at least one reference caption")
