"""Embed one split of a prepared manifest: resumable, deterministic, atomic.

Output layout (docs/CONTRACTS.md): ``{out_dir}/image.npy``, ``text.npy`` (float32, L2-normalised),
``image_ids.txt``, ``text_ids.txt`` and ``meta.json``.

**``meta.json`` is the completion marker.** It is deleted when a run starts and written last, after
every other file has been renamed into place, so a directory without it is never a finished result.

Work is cut into shards of ``shard_rows`` rows per modality, each saved atomically under
``{out_dir}/.shards/`` beside a small JSON naming the *cache key* (input fingerprint + encoder
identity + batch layout) and the shard's own sha256. A rerun reuses only shards whose key and hash
match, so a killed run continues where it stopped and stale shards from other inputs or models are
recomputed. Batches never straddle shard boundaries, so a resumed run gives the same bytes as an
uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from modgap.embed.backends import DEFAULT_BACKEND, EncoderBackend, create_encoder
from modgap.embed.encoder import ImageItem, ImageReadError, progress_interval
from modgap.errors import ManifestError, ModgapError
from modgap.io import (
    atomic_path,
    clean_stale_temps,
    folder_lock,
    read_json,
    save_npy_atomic,
    sha256_file,
    write_json_atomic,
    write_text_atomic,
)
from modgap.provenance import environment
from modgap.validate import check_embeddings

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MODALITIES = ("image", "text")
SHARD_DIR = ".shards"
META = "meta.json"
LOCK = ".extract.lock"


@dataclass(frozen=True)
class EncoderSpec:
    """How to build the encoder: a registered backend (:mod:`modgap.embed.backends`, default open_clip),
    its model name and weights (for open_clip a pretrained tag or a local checkpoint path)."""

    model_name: str
    pretrained: str | None = None
    device: str = "auto"
    precision: str = "fp32"
    num_workers: int = 0
    backend: str = DEFAULT_BACKEND
    options: Mapping[str, Any] | None = None  # backend-specific settings (config encoders.<name>.hf)

    def load(self) -> EncoderBackend:
        return create_encoder(
            self.backend,
            self.model_name,
            self.pretrained,
            self.device,
            self.precision,
            self.num_workers,
            dict(self.options) if self.options else None,
        )


@dataclass(frozen=True)
class SplitInputs:
    """The rows of one split, in output order (sorted by id within each modality)."""

    split: str
    image_ids: list[str]
    images: list[ImageItem]
    text_ids: list[str]
    captions: list[str]

    def fingerprint(self) -> str:
        """sha256 over (id, image sha256) for image rows and (id, caption) for text rows."""
        digest = hashlib.sha256()
        for ident, item in zip(self.image_ids, self.images, strict=True):
            digest.update(json.dumps(["image", ident, item.sha256]).encode() + b"\n")
        for ident, caption in zip(self.text_ids, self.captions, strict=True):
            digest.update(json.dumps(["text", ident, caption], ensure_ascii=False).encode() + b"\n")
        return digest.hexdigest()


def read_split(
    manifest_path: str | os.PathLike[str], split: str, root: str | os.PathLike[str] | None = None
) -> SplitInputs:
    """Select ``split`` from a manifest parquet and check that its images exist.

    Relative ``image_path`` values are resolved against ``root`` (default: the working directory,
    i.e. the project root when run from Snakemake). Missing ``sha256`` values are computed.
    """
    import pandas as pd

    manifest_path = Path(manifest_path)
    if not manifest_path.is_file():
        raise ManifestError(f"{manifest_path}: manifest does not exist")
    try:
        frame = pd.read_parquet(manifest_path)
    except Exception as exc:
        raise ManifestError(f"{manifest_path}: cannot read parquet manifest: {exc}") from exc
    required = ["id", "image_path", "caption", "split"] + (["stats_role"] if split == "stats" else [])
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ManifestError(f"{manifest_path}: missing column(s) {', '.join(missing)}")

    rows = frame[frame["split"] == split]
    if rows.empty:
        present = sorted(map(str, frame["split"].dropna().unique()))
        raise ManifestError(f"{manifest_path}: split {split!r} has no rows (splits present: {present})")
    ids = rows["id"].astype(str)
    dupes = ids[ids.duplicated()]
    if not dupes.empty:
        raise ManifestError(f"{manifest_path}: split {split!r} has duplicate id {dupes.iloc[0]!r}")
    rows = rows.assign(id=ids).sort_values("id", kind="stable")

    if split == "stats":
        roles = rows["stats_role"]
        bad = rows[~roles.isin(MODALITIES)]
        if not bad.empty:
            raise ManifestError(
                f"{manifest_path}: stats row {bad['id'].iloc[0]!r} has stats_role "
                f"{bad['stats_role'].iloc[0]!r}, expected 'image' or 'text'"
            )
        image_rows, text_rows = rows[roles == "image"], rows[roles == "text"]
        for name, part in (("image", image_rows), ("text", text_rows)):
            if part.empty:
                raise ManifestError(f"{manifest_path}: split 'stats' has no stats_role={name!r} rows")
    else:
        image_rows = text_rows = rows

    base = Path(root) if root is not None else Path.cwd()
    images = [_image_item(manifest_path, base, row) for row in image_rows.itertuples(index=False)]
    captions = []
    for ident, caption in zip(text_rows["id"], text_rows["caption"], strict=True):
        if not isinstance(caption, str) or not caption.strip():
            raise ManifestError(f"{manifest_path}: id {ident!r} in split {split!r} has no caption")
        captions.append(caption)
    return SplitInputs(split, list(image_rows["id"]), images, list(text_rows["id"]), captions)


def _image_item(manifest_path: Path, base: Path, row: Any) -> ImageItem:
    path = Path(row.image_path)
    if not path.is_absolute():
        path = base / path
    if not path.is_file():
        raise ImageReadError(f"{path}: image file of id {row.id!r} does not exist (manifest {manifest_path})")
    declared = getattr(row, "sha256", None)
    sha = declared if isinstance(declared, str) and declared else sha256_file(path)
    return ImageItem(path, sha)


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("torch", "open_clip_torch", "timm", "transformers", "numpy", "pillow", "modgap"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


class _ShardStore:
    """Completed shards of one extraction, keyed so that only matching work is ever reused."""

    def __init__(self, directory: Path, key: str) -> None:
        self.dir = directory
        self.key = key
        self.dir.mkdir(parents=True, exist_ok=True)
        self._drop_stale()

    def _paths(self, modality: str, index: int) -> tuple[Path, Path]:
        stem = self.dir / f"{modality}-{index:05d}"
        return stem.with_suffix(".npy"), stem.with_suffix(".json")

    def _drop_stale(self) -> None:
        for marker in self.dir.glob("*.json"):
            try:
                stale = read_json(marker).get("key") != self.key
            except (OSError, ValueError, AttributeError):
                stale = True
            if stale:
                marker.unlink(missing_ok=True)
                marker.with_suffix(".npy").unlink(missing_ok=True)

    def load(self, modality: str, index: int, rows: int, dim: int) -> np.ndarray | None:
        array_path, marker_path = self._paths(modality, index)
        if not (marker_path.is_file() and array_path.is_file()):
            return None
        marker = read_json(marker_path)
        if marker.get("key") != self.key or marker.get("sha256") != sha256_file(array_path):
            return None
        array = np.load(array_path, allow_pickle=False)
        if array.shape != (rows, dim) or array.dtype != np.float32:
            return None
        return array

    def save(self, modality: str, index: int, start: int, array: np.ndarray) -> None:
        array_path, marker_path = self._paths(modality, index)
        save_npy_atomic(array_path, array)
        # The marker is written after the array: a shard without a valid marker is recomputed.
        marker = {"key": self.key, "modality": modality, "index": index, "start": start, "rows": len(array)}
        write_json_atomic(marker_path, {**marker, "sha256": sha256_file(array_path)})

    def array_path(self, modality: str, index: int) -> Path:
        return self._paths(modality, index)[0]


def _shard_bounds(n: int, shard_rows: int) -> list[tuple[int, int]]:
    return [(start, min(start + shard_rows, n)) for start in range(0, n, shard_rows)]


def _encode_modality(
    encoder: EncoderBackend,
    inputs: SplitInputs,
    modality: str,
    store: _ShardStore,
    batch_size: int,
    shard_rows: int,
    progress: bool,
) -> int:
    """Fill the store with every shard of one modality; return how many shards were computed."""
    payload: Sequence[Any] = inputs.images if modality == "image" else inputs.captions
    bounds = _shard_bounds(len(payload), shard_rows)
    computed = 0
    desc = f"{inputs.split} {modality}"
    interval = progress_interval()
    with tqdm(total=len(payload), unit=modality, desc=desc, disable=not progress, mininterval=interval) as bar:
        for index, (start, stop) in enumerate(bounds):
            if store.load(modality, index, stop - start, encoder.embed_dim) is not None:
                bar.update(stop - start)
                continue
            chunk = payload[start:stop]
            if modality == "image":
                array = encoder.encode_images(chunk, batch_size, progress=bar)
            else:
                array = encoder.encode_texts(chunk, batch_size, progress=bar)
            check_embeddings(
                array,
                f"split {inputs.split!r} {modality} embeddings (rows {start}-{stop - 1})",
                dim=encoder.embed_dim,
                start_row=start,
            )
            store.save(modality, index, start, array)
            computed += 1
    return computed


def _assemble(store: _ShardStore, modality: str, n: int, dim: int, shard_rows: int, target: Path) -> str:
    """Stream the shards into ``target`` (never holds the whole matrix); return its sha256."""
    with atomic_path(target) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
        for index, (start, stop) in enumerate(_shard_bounds(n, shard_rows)):
            out[start:stop] = np.load(store.array_path(modality, index), allow_pickle=False)
        out.flush()
        del out
    return sha256_file(target)


def extract_split(
    manifest_path: str | os.PathLike[str],
    split: str,
    encoder_spec: EncoderSpec | Mapping[str, Any] | EncoderBackend,
    out_dir: str | os.PathLike[str],
    batch_size: int = 64,
    shard_rows: int = 1024,
    *,
    root: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Embed ``split`` of ``manifest_path`` into ``out_dir`` and return the written ``meta.json``.

    ``encoder_spec`` is an :class:`EncoderSpec`, a mapping of its fields, or an already loaded
    encoder (reused across splits to avoid rebuilding the model).
    """
    if batch_size < 1 or shard_rows < 1:
        raise ModgapError(f"batch_size ({batch_size}) and shard_rows ({shard_rows}) must be positive")
    out = Path(out_dir)
    manifest_path = Path(manifest_path)
    inputs = read_split(manifest_path, split, root)  # fails on bad input before any model is built
    fingerprint = inputs.fingerprint()

    out.mkdir(parents=True, exist_ok=True)
    # One extraction per folder: a second concurrent run fails at once instead of racing on the shards.
    with folder_lock(out / LOCK):
        # kill -9 skips atomic_path's cleanup: full-size .image.npy.*.tmp files would stay forever.
        for stale in [*clean_stale_temps(out), *clean_stale_temps(out / SHARD_DIR)]:
            log.info("removed %s left by a killed run", stale)
        return _extract_locked(manifest_path, inputs, fingerprint, encoder_spec, out, batch_size, shard_rows, progress)


def _extract_locked(
    manifest_path: Path,
    inputs: SplitInputs,
    fingerprint: str,
    encoder_spec: EncoderSpec | Mapping[str, Any] | EncoderBackend,
    out: Path,
    batch_size: int,
    shard_rows: int,
    progress: bool,
) -> dict[str, Any]:
    split = inputs.split
    (out / META).unlink(missing_ok=True)  # from here on the directory is "in progress"

    encoder = _as_encoder(encoder_spec)
    dim = encoder.embed_dim
    key_fields = {
        "format": FORMAT_VERSION,
        "input_sha256": fingerprint,
        "encoder": encoder.identity(),
        "batch_size": batch_size,
        "shard_rows": shard_rows,
    }
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()
    store = _ShardStore(out / SHARD_DIR, key)

    counts = {"image": len(inputs.images), "text": len(inputs.captions)}
    computed = {m: _encode_modality(encoder, inputs, m, store, batch_size, shard_rows, progress) for m in MODALITIES}
    log.info("split %s: computed %s shards, reused the rest", split, computed)

    files = {f"{m}.npy": _assemble(store, m, counts[m], dim, shard_rows, out / f"{m}.npy") for m in MODALITIES}
    write_text_atomic(out / "image_ids.txt", "".join(f"{i}\n" for i in inputs.image_ids))
    write_text_atomic(out / "text_ids.txt", "".join(f"{i}\n" for i in inputs.text_ids))

    meta = {
        "format": FORMAT_VERSION,
        "split": split,
        "model": {
            "name": encoder.model_name,
            "pretrained": encoder.pretrained,
            "checkpoint_path": encoder.checkpoint_path,
            "checkpoint_sha256": encoder.checkpoint_sha256,
            "weights_sha256": encoder.weights_sha256,
        },
        "preprocessing": encoder.preprocessing(),
        "dtype": "float32",
        "normalisation": "l2",
        "embed_dim": dim,
        "counts": counts,
        "paired": split != "stats",
        "inputs": {
            "manifest": str(manifest_path),
            "manifest_sha256": sha256_file(manifest_path),
            "input_sha256": fingerprint,
        },
        "files": files,
        "device": str(encoder.device),
        "precision": encoder.precision,
        "batch_size": batch_size,
        "shard_rows": shard_rows,
        "versions": _versions(),
        "environment": environment(),
    }
    write_json_atomic(out / META, meta)  # completion marker: last
    shutil.rmtree(out / SHARD_DIR, ignore_errors=True)
    return meta


def _as_encoder(spec: EncoderSpec | Mapping[str, Any] | EncoderBackend) -> EncoderBackend:
    if isinstance(spec, EncoderBackend):
        return spec
    if isinstance(spec, Mapping):
        spec = EncoderSpec(**spec)
    return spec.load()


def is_complete(out_dir: str | os.PathLike[str]) -> bool:
    """True when ``out_dir`` holds a finished extraction (its ``meta.json`` exists)."""
    return (Path(out_dir) / META).is_file()
