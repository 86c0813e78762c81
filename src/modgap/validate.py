"""Input checks for embedding matrices, with messages that say what is wrong and where."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from modgap.errors import InvalidEmbeddingsError


def check_embeddings(
    array: np.ndarray,
    name: str,
    *,
    dim: int | None = None,
    min_rows: int = 1,
    allow_zero_rows: bool = False,
    start_row: int = 0,
) -> None:
    """Raise :class:`InvalidEmbeddingsError` if ``array`` is not a usable (n, d) embedding block.

    ``name`` identifies the source (a file path or a role such as "image statistics set") and
    ``start_row`` offsets reported row numbers when ``array`` is a chunk of a larger file.
    """
    if array.ndim != 2:
        raise InvalidEmbeddingsError(f"{name}: expected a 2-D (n, d) array, got shape {array.shape}")
    n, d = array.shape
    if dim is not None and d != dim:
        raise InvalidEmbeddingsError(f"{name}: expected dimension {dim}, got {d}")
    if n < min_rows:
        raise InvalidEmbeddingsError(f"{name}: needs at least {min_rows} rows, got {n}")
    if not np.issubdtype(array.dtype, np.floating):
        raise InvalidEmbeddingsError(f"{name}: expected a floating-point array, got {array.dtype}")
    finite = np.isfinite(array)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.all(axis=1))
        raise InvalidEmbeddingsError(
            f"{name}: {bad_rows.size} row(s) contain NaN or Inf, first at row {start_row + int(bad_rows[0])}"
        )
    if not allow_zero_rows:
        norms = np.linalg.norm(array, axis=1)
        zero = np.flatnonzero(norms == 0)
        if zero.size:
            raise InvalidEmbeddingsError(
                f"{name}: {zero.size} zero vector(s) cannot be normalised, first at row {start_row + int(zero[0])}"
            )


def open_embeddings(source: str | os.PathLike[str] | np.ndarray) -> np.ndarray:
    """Return an (n, d) array, memory-mapping ``.npy`` files instead of reading them whole."""
    if isinstance(source, np.ndarray):
        return source
    path = Path(source)
    if not path.exists():
        raise InvalidEmbeddingsError(f"{path}: embedding file does not exist")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        # truncated (mmap longer than the file), not .npy at all, or an object array (pickle)
        raise InvalidEmbeddingsError(f"{path}: cannot read as .npy: {' '.join(str(exc).split())}") from None
    return array


def l2_normalise(array: np.ndarray, dtype: np.dtype | type = np.float64) -> np.ndarray:
    """Return rows scaled to unit L2 norm in ``dtype`` (zero rows must be rejected beforehand)."""
    out = np.asarray(array, dtype=dtype)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def open_matrix(path: Path, *, dim: int | None = None, min_rows: int = 1) -> np.ndarray:
    """Memory-map an (n, d) float ``.npy`` and check its header only (contents stream later)."""
    array = open_embeddings(path)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
        raise InvalidEmbeddingsError(f"{path}: expected a 2-D float (n, d) array, got {array.dtype} {array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise InvalidEmbeddingsError(f"{path}: dimension {array.shape[1]} differs from the other inputs' {dim}")
    if array.shape[0] < min_rows:
        raise InvalidEmbeddingsError(f"{path}: needs at least {min_rows} rows, got {array.shape[0]}")
    return array


def check_id_file(ids_path: Path, rows: int) -> list[str] | None:
    """The ids of ``ids_path`` (None when absent); their count must equal the matrix's rows."""
    if not ids_path.exists():
        return None
    try:
        ids = ids_path.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidEmbeddingsError(f"{ids_path}: unreadable id list ({exc})") from None
    if len(ids) != rows:
        raise InvalidEmbeddingsError(f"{ids_path}: {len(ids)} ids for {rows} rows of the matching .npy")
    return ids


def scan_rows(array: np.ndarray, name: str, chunk_rows: int = 16384) -> None:
    """One streamed pass: every row finite, non-zero and with a squared norm that fits in float64.

    Stages run it on each input before computing anything, so a bad row fails up front with its row
    number instead of turning into NaN deep inside a statistic (rows scaled by 1e200 are finite, but
    their norms overflow and normalise to 0/0).
    """
    for start in range(0, array.shape[0], chunk_rows):
        block = np.asarray(array[start : start + chunk_rows])
        wide = block.astype(np.float64)
        sq = np.einsum("ij,ij->i", wide, wide)
        if np.isfinite(sq).all() and sq.all():
            continue
        check_embeddings(block, name, start_row=start)  # names NaN/Inf/zero rows
        row = start + int(np.flatnonzero(~np.isfinite(sq))[0])
        raise InvalidEmbeddingsError(f"{name}: squared row norm overflows float64 at row {row}; rescale the embeddings")
