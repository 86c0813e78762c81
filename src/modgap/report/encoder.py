"""Encoder report: retrieval and centroid gap on the held-out paired split, and a 2-D PCA figure.

Computed from the extracted embeddings, so it works the same for a project-trained encoder and
for any pretrained open_clip model of the paper tier.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from modgap.embed.retrieval import retrieval_metrics
from modgap.errors import InvalidEmbeddingsError
from modgap.io import read_json, write_json_atomic
from modgap.output.figures import plt, save_figure
from modgap.output.tables import write_table
from modgap.provenance import environment
from modgap.validate import check_embeddings

EMBEDDED_CAVEAT = (
    "Embedded tier: a LiT-style two-tower open_clip model (EfficientNet-Lite0 + MiniLM-L6, heads trained "
    "on a few thousand pairs), not a web-scale CLIP; the papers use LLM2CLIP-Openai-L-14-336."
)


def load_paired_split(split_dir: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, dict]:
    """Image and text embeddings of a paired split, checked to be row-aligned."""
    split_dir = Path(split_dir)
    image = np.load(split_dir / "image.npy")
    text = np.load(split_dir / "text.npy")
    check_embeddings(image, str(split_dir / "image.npy"))
    check_embeddings(text, str(split_dir / "text.npy"), dim=image.shape[1])
    image_ids = (split_dir / "image_ids.txt").read_text().split()
    text_ids = (split_dir / "text_ids.txt").read_text().split()
    if image_ids != text_ids:
        raise InvalidEmbeddingsError(f"{split_dir}: image and text rows are not paired (ids differ)")
    return image, text, read_json(split_dir / "meta.json")


def encoder_metrics(runs: list[dict], embeddings_root: str | os.PathLike[str]) -> list[dict]:
    rows = []
    for run in runs:
        split_dir = Path(embeddings_root, run["encoder"], run["dataset"], "diag")
        image, text, meta = load_paired_split(split_dir)
        metrics = retrieval_metrics(image, text)
        rows.append(
            {
                "encoder": run["encoder"],
                "dataset": run["dataset"],
                "model": meta.get("model"),
                "dim": int(image.shape[1]),
                **metrics,
            }
        )
    return rows


def pca_figure(runs: list[dict], embeddings_root: str | os.PathLike[str], split: str, seed: int) -> plt.Figure:
    fig, axes = plt.subplots(1, len(runs), figsize=(4.8 * len(runs), 4.4), squeeze=False)
    for ax, run in zip(axes[0], runs, strict=True):
        split_dir = Path(embeddings_root, run["encoder"], run["dataset"], split)
        image = np.load(split_dir / "image.npy").astype(np.float64)
        text = np.load(split_dir / "text.npy").astype(np.float64)
        pca = PCA(n_components=2, random_state=seed).fit(np.vstack([image, text]))
        for data, label, colour in ((image, "image", "tab:blue"), (text, "text", "tab:orange")):
            xy = pca.transform(data)
            ax.scatter(xy[:, 0], xy[:, 1], s=4, alpha=0.5, c=colour, label=f"{label} (n={len(data)})")
            centre = pca.transform(data.mean(axis=0, keepdims=True))[0]
            ax.scatter(*centre, marker="X", s=120, c=colour, edgecolors="black", linewidths=0.8)
        ratio = pca.explained_variance_ratio_
        ax.set_xlabel(f"PC1 ({100 * ratio[0]:.1f}% of variance)")
        ax.set_ylabel(f"PC2 ({100 * ratio[1]:.1f}% of variance)")
        ax.set_title(f"{run['encoder']} / {run['dataset']} ({split})", fontsize=9)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8, markerscale=3, frameon=False)
    fig.suptitle("Image vs text embeddings: 2-D PCA (X = centroid)", fontsize=10)
    return fig


def write_encoder_report(
    runs: list[dict],
    embeddings_root: str | os.PathLike[str],
    *,
    pca_split: str,
    seed: int,
    metrics_out: str | os.PathLike[str],
    tables_prefix: str | os.PathLike[str],
    figure_prefix: str | os.PathLike[str],
) -> list[dict]:
    rows = encoder_metrics(runs, embeddings_root)
    metrics = {f"{r['encoder']}/{r['dataset']}": r for r in rows}
    write_json_atomic(metrics_out, {**metrics, "environment": environment()})  # modgap.provenance
    table = pd.DataFrame(rows)
    table = table[
        ["encoder", "dataset", "dim", "n", "i2t_R@1", "i2t_R@5", "t2i_R@1", "t2i_R@5", "chance_R@1", "centroid_gap"]
    ]
    table.columns = [
        "encoder",
        "dataset",
        "d",
        "n pairs (diag)",
        "I→T R@1",
        "I→T R@5",
        "T→I R@1",
        "T→I R@5",
        "chance R@1",
        "centroid gap ‖µx−µy‖",
    ]
    write_table(table, tables_prefix, caption=f"Encoder retrieval on the held-out diag split. {EMBEDDED_CAVEAT}")
    save_figure(pca_figure(runs, embeddings_root, pca_split, seed), figure_prefix)
    return rows
