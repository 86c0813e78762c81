"""Captioning metrics with one fixed tokenizer: corpus BLEU-4 (Papineni et al. 2002, closest
reference length) and CIDEr-D (Vedantam et al. 2015: clipped n-gram counts, Gaussian length
penalty σ = 6, idf from the reference corpus, ×10), as the COCO caption toolkit computes them."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize(text: str) -> list[str]:
    """Lower-cased alphanumeric words (apostrophe contractions kept); punctuation dropped."""
    return _TOKEN.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu(candidates: Mapping[str, str], references: Mapping[str, Sequence[str]], max_n: int = 4) -> float:
    """Corpus-level BLEU-``max_n``: clipped n-gram precisions pooled over the corpus, geometric mean,
    brevity penalty against the reference length closest to each candidate's length."""
    _same_keys(candidates, references)
    matched = np.zeros(max_n)
    total = np.zeros(max_n)
    cand_len = ref_len = 0
    for key, cand in candidates.items():
        hyp = tokenize(cand)
        refs = [tokenize(r) for r in references[key]]
        cand_len += len(hyp)
        ref_len += min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
        for n in range(1, max_n + 1):
            counts = ngrams(hyp, n)
            max_ref: Counter[tuple[str, ...]] = Counter()
            for r in refs:
                max_ref |= ngrams(r, n)
            matched[n - 1] += sum(min(c, max_ref[g]) for g, c in counts.items())
            total[n - 1] += max(len(hyp) - n + 1, 0)
    if cand_len == 0 or np.any(matched == 0):
        return 0.0
    log_precision = float(np.mean(np.log(matched / total)))
    brevity = 1.0 if cand_len > ref_len else math.exp(1.0 - ref_len / cand_len)
    return brevity * math.exp(log_precision)


def cider_d(
    candidates: Mapping[str, str], references: Mapping[str, Sequence[str]], *, sigma: float = 6.0, max_n: int = 4
) -> tuple[float, dict[str, float]]:
    """CIDEr-D: corpus mean and per-item scores. Document frequencies come from the reference sets
    of the evaluated corpus (one document per item), so a corpus of one item scores 0 by design."""
    _same_keys(candidates, references)
    keys = list(candidates)
    refs_tok = {k: [tokenize(r) for r in references[k]] for k in keys}
    doc_freq: Counter[tuple[str, ...]] = Counter()
    for k in keys:
        doc_freq.update({g for r in refs_tok[k] for n in range(1, max_n + 1) for g in ngrams(r, n)})
    log_docs = math.log(float(len(keys)))

    def vector(tokens: list[str]) -> tuple[list[dict[tuple[str, ...], float]], list[float], int]:
        vecs, norms = [], []
        for n in range(1, max_n + 1):
            vec = {g: c * (log_docs - math.log(max(1.0, doc_freq[g]))) for g, c in ngrams(tokens, n).items()}
            vecs.append(vec)
            norms.append(math.sqrt(sum(v * v for v in vec.values())))
        return vecs, norms, len(tokens)

    per_item: dict[str, float] = {}
    for k in keys:
        hyp_vec, hyp_norm, hyp_len = vector(tokenize(candidates[k]))
        score = np.zeros(max_n)
        for ref in refs_tok[k]:
            ref_vec, ref_norm, ref_len = vector(ref)
            penalty = math.exp(-((hyp_len - ref_len) ** 2) / (2 * sigma**2))
            for n in range(max_n):
                dot = sum(min(v, ref_vec[n].get(g, 0.0)) * ref_vec[n].get(g, 0.0) for g, v in hyp_vec[n].items())
                if hyp_norm[n] and ref_norm[n]:
                    score[n] += penalty * dot / (hyp_norm[n] * ref_norm[n])
        per_item[k] = float(score.mean() / max(len(refs_tok[k]), 1) * 10.0)
    mean = float(np.mean(list(per_item.values()))) if per_item else 0.0
    return mean, per_item


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
