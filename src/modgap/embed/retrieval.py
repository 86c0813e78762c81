"""Cross-modal retrieval recall and the centroid gap for paired image/text embeddings.

Row ``i`` of the image matrix and row ``i`` of the text matrix form a pair. Similarity is the cosine (rows
are L2-normalised here). Candidates scoring the same as the true partner (within ``TIE_TOLERANCE``, e.g.
duplicate captions) are ordered uniformly at random and recall is reported as its exact expectation over that
order, so it is deterministic, a collapsed embedding (all rows equal) scores chance k/n rather than 0 or 1,
and duplicated items are not punished beyond what they make indistinguishable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from modgap.errors import InvalidEmbeddingsError
from modgap.validate import check_embeddings, l2_normalise

_CHUNK_ROWS = 1024  # bounds the similarity block held in memory to chunk x n
TIE_TOLERANCE = 1e-6  # float32 embeddings of identical inputs can differ in the last bits across batches


def _checked_pair(image: np.ndarray, text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    check_embeddings(image, "image embeddings")
    check_embeddings(text, "text embeddings", dim=image.shape[1])
    if image.shape[0] != text.shape[0]:
        raise InvalidEmbeddingsError(
            f"paired embeddings need equal row counts: {image.shape[0]} images vs {text.shape[0]} texts"
        )
    return l2_normalise(image), l2_normalise(text)


def rank_counts(queries: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For query ``i`` (rows already L2-normalised): how many candidates beat candidate ``i``, how many tie it."""
    n = queries.shape[0]
    better = np.empty(n, dtype=np.int64)
    tied = np.empty(n, dtype=np.int64)
    for start in range(0, n, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n)
        sims = queries[start:stop] @ candidates.T
        true = sims[np.arange(stop - start), np.arange(start, stop)][:, None]
        better[start:stop] = (sims > true + TIE_TOLERANCE).sum(axis=1)
        tied[start:stop] = (np.abs(sims - true) <= TIE_TOLERANCE).sum(axis=1) - 1  # minus the partner itself
    return better, tied


def expected_hits(better: np.ndarray, tied: np.ndarray, k: int) -> np.ndarray:
    """P(rank <= k) when the partner's rank is uniform on better+1 .. better+tied+1."""
    return np.clip((k - better) / (tied + 1), 0.0, 1.0)


def recall_at_k(image: np.ndarray, text: np.ndarray, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Recall@k in both directions: keys ``i2t_R@k`` (image queries) and ``t2i_R@k`` (text queries)."""
    img, txt = _checked_pair(image, text)
    i2t, t2i = rank_counts(img, txt), rank_counts(txt, img)
    out: dict[str, float] = {}
    for k in ks:
        out[f"i2t_R@{k}"] = float(np.mean(expected_hits(*i2t, k)))
        out[f"t2i_R@{k}"] = float(np.mean(expected_hits(*t2i, k)))
    return out


def centroid_gap(image: np.ndarray, text: np.ndarray) -> float:
    """‖mean(image) − mean(text)‖ of the L2-normalised rows (the two sets need not be paired)."""
    check_embeddings(image, "image embeddings")
    check_embeddings(text, "text embeddings", dim=image.shape[1])
    diff = l2_normalise(image).mean(axis=0) - l2_normalise(text).mean(axis=0)
    return float(np.linalg.norm(diff))


def retrieval_metrics(image: np.ndarray, text: np.ndarray, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Recall@k both directions, the chance level of each k (k/n), the centroid gap and n."""
    metrics: dict[str, float] = recall_at_k(image, text, ks)
    n = image.shape[0]
    for k in ks:
        metrics[f"chance_R@{k}"] = min(k, n) / n
    metrics["centroid_gap"] = centroid_gap(image, text)
    metrics["n"] = n
    return metrics
