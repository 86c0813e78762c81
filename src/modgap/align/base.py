"""Estimator base class for alignment methods (scikit-learn contract, spec alignment-methods 0).

``fit(image_stats, text_stats)`` sees only the *unpaired* statistics split; ``transform(text)``
returns unit-norm float32 substitutes; ``save``/``load`` round-trip the fitted state exactly
(``state.safetensors`` with float64 arrays + ``state.json`` with method, params and provenance).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save
from sklearn.base import BaseEstimator
from threadpoolctl import threadpool_limits

from modgap import __version__
from modgap.align.paramrules import ALIGN_RULES
from modgap.align.source import EmbeddingSource, SourceLike
from modgap.errors import (
    ConfigError,
    InvalidEmbeddingsError,
    InvalidStateError,
    MissingInputError,
    ModgapError,
    NonFiniteError,
)
from modgap.io import atomic_path, read_json, write_bytes_atomic, write_json_atomic
from modgap.paramcheck import check_params

STATE_ARRAYS = "state.safetensors"
STATE_JSON = "state.json"
# Rows per noise block: stochastic methods draw noise per block of rows from (seed, stream, block),
# so the substitutes do not depend on how the input happens to be chunked.
NOISE_BLOCK_ROWS = 1024


@dataclass(frozen=True)
class Param:
    """A hyper-parameter: its default and why (the paper's value, or our choice and the reason)."""

    default: Any
    doc: str


class AlignMethod(BaseEstimator):
    """Base class. Subclasses set ``method`` and ``PARAMS`` and implement ``_fit``/``_transform_block``.

    scikit-learn contract: each subclass's ``__init__`` takes one keyword-only argument per ``PARAMS``
    key, with the same default, and stores it unchanged under its name (checked when the class is
    defined), so ``get_params``, ``set_params`` and ``sklearn.base.clone`` work. Unlike scikit-learn,
    the constructor and ``set_params`` validate (``ConfigError`` naming the method and parameter):
    a bad config fails before a long fit starts.

    Methods with a set-level step (a mean over the set being transformed: ReAlign step 3, BC step 3,
    Unicorn, AnisoAlign calibration) name the stored mean in ``set_mean_key`` and implement
    ``_pre_calibration``; ``transform(..., transductive=True)`` then recomputes it on the input set.
    """

    method: ClassVar[str] = ""
    PARAMS: ClassVar[dict[str, Param]] = {}
    min_fit_rows: ClassVar[int] = 1
    set_mean_key: ClassVar[str | None] = None
    stochastic: ClassVar[bool] = False
    chunk_rows: int  # a hyper-parameter of every method: rows per streamed chunk

    # Fitted state: absent from an unfitted instance's own attributes (set by fit/load), as in scikit-learn.
    state_: dict[str, np.ndarray] | None = None
    meta_: dict[str, Any]
    timing_: dict[str, float]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in vars(cls):
            cls.__init__ = _checked_init(cls.__init__)  # type: ignore[method-assign]
        _check_signature(cls)

    def _set_init_params(self, values: Mapping[str, Any]) -> None:
        """Store each ``PARAMS`` argument unchanged under its own name (a subclass ``__init__``'s ``locals()``)."""
        for key in self.PARAMS:
            setattr(self, key, values[key])

    def _check_all_params(self) -> None:
        """Types and ranges (registry-level schema) first, so ``_check_params`` may rely on them."""
        defaults = {k: p.default for k, p in self.PARAMS.items()}
        check_params(self.params, defaults, ALIGN_RULES, f"align method {self.method!r}")
        self._check_params()

    @classmethod
    def _reject_unknown(cls, params: Mapping[str, Any]) -> None:
        unknown = sorted(set(params) - set(cls.PARAMS))
        if unknown:
            raise ConfigError(
                f"align method {cls.method!r}: unknown parameter(s) {unknown}; known: {sorted(cls.PARAMS)}"
            )

    @property
    def params(self) -> dict[str, Any]:
        """The hyper-parameters in ``PARAMS`` order (a fresh dict: change them with ``set_params``)."""
        return {k: getattr(self, k) for k in self.PARAMS}

    @property
    def name(self) -> str:
        """The registry name: the method, or a preset such as 'realign_anchor' (set by ``registry.make``)."""
        return self.__dict__.get("_name", self.method)

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    def set_params(self, **params: Any) -> Self:
        """Set hyper-parameters, validated as in the constructor; on an error nothing changes."""
        self._reject_unknown(params)
        old = self.params
        for key, value in params.items():
            setattr(self, key, value)
        try:
            self._check_all_params()
        except ConfigError:
            for key, value in old.items():
                setattr(self, key, value)
            raise
        return self

    def __sklearn_clone__(self) -> Self:
        # A preset clones to the same preset: the registry name is not a hyper-parameter.
        new = super().__sklearn_clone__()
        new.name = self.name
        return new

    def __sklearn_is_fitted__(self) -> bool:
        return self.state_ is not None

    # ----------------------------------------------------------------- subclass hooks
    def _check_params(self) -> None:
        """Raise ConfigError for invalid parameter values."""

    def _fit(self, images: EmbeddingSource, texts: EmbeddingSource) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _transform_block(self, y: np.ndarray, start: int, state: Mapping[str, np.ndarray], stream: str) -> np.ndarray:
        """Map unit-norm float64 text rows ``y`` (rows ``start..``) to float64 substitutes."""
        raise NotImplementedError

    def _pre_calibration(self, y: np.ndarray, start: int, state: Mapping[str, np.ndarray], stream: str) -> np.ndarray:
        """Rows whose mean is the set-level statistic ``set_mean_key`` (only for such methods)."""
        raise NotImplementedError

    def _iter_transform(
        self, src: EmbeddingSource, state: Mapping[str, np.ndarray], stream: str
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, substitutes)`` blocks; methods with a faster raw-row path override this."""
        for start, y in src.chunks(self.chunk_rows):
            yield start, self._transform_block(y, start, state, stream)

    def _extra_meta(self) -> dict[str, Any]:
        """Additional JSON metadata recorded at fit time (diagnostic logs, derived sizes)."""
        return {}

    def _after_load(self) -> None:
        """Rebuild non-array state (e.g. torch modules) from ``state_`` after ``load``."""

    # ----------------------------------------------------------------- public API
    def _min_fit_rows(self, dim: int) -> int:
        """Fewest statistics rows the method's estimates are defined for (a covariance needs d + 1)."""
        return self.min_fit_rows

    def fit(self, image_source: SourceLike, text_source: SourceLike) -> Self:
        """Fit on the unpaired statistics split: ``image_source`` and ``text_source`` come from disjoint pairs."""
        images = EmbeddingSource(image_source, "image statistics set")
        texts = EmbeddingSource(text_source, "text statistics set", dim=images.dim)
        need = self._min_fit_rows(images.dim)
        for src in (images, texts):
            if src.n < need:
                raise InvalidEmbeddingsError(
                    f"{src.name}: align method {self.name!r} needs at least {need} rows at dimension {src.dim}, "
                    f"got {src.n}"
                )
        t0 = time.perf_counter()
        with self._blas_limit():
            fitted = self._fit(images, texts)
        self.state_ = {k: np.asarray(v) for k, v in fitted.items()}
        for key, value in self.state_.items():
            if value.dtype.kind in "fc" and not np.isfinite(value).all():
                raise NonFiniteError(f"align method {self.name!r}: fitted state {key!r} holds NaN or Inf")
        # Timings are kept apart from the state: they differ between identical runs (timing.json).
        self.timing_ = {"fit_seconds": time.perf_counter() - t0}
        self.meta_ = {
            "n_x": images.n,
            "n_y": texts.n,
            "dim": images.dim,
            "inputs": {"image": images.fingerprint(), "text": texts.fingerprint()},
        }
        self.meta_.update(self._extra_meta())
        return self

    def _blas_limit(self) -> contextlib.AbstractContextManager:
        """Cap BLAS threads when the method has a ``blas_threads`` param (None = library default)."""
        n = self.params.get("blas_threads")
        return threadpool_limits(int(n)) if n is not None else contextlib.nullcontext()

    def _require_fitted(self) -> dict[str, np.ndarray]:
        if self.state_ is None:
            raise ModgapError(f"align method {self.method!r}: call fit() or load() before transform()")
        return self.state_

    def _stream_state(self, texts: EmbeddingSource, transductive: bool, stream: str) -> dict[str, np.ndarray]:
        state = self._require_fitted()
        if not transductive or self.set_mean_key is None:
            return state
        total = np.zeros(texts.dim)
        for start, y in texts.chunks(self.chunk_rows):
            total += self._pre_calibration(y, start, state, stream).sum(axis=0)
        return {**state, self.set_mean_key: total / texts.n}

    def transform(self, texts: SourceLike, *, transductive: bool = False, stream: str = "") -> np.ndarray:
        """Substitutes (float32, unit norm unless the method says otherwise) for every row of ``texts``.

        ``transductive`` recomputes the set-level mean on ``texts`` (spec 0); ``stream`` names the
        split so stochastic methods draw independent noise per split.
        """
        src = EmbeddingSource(texts, "texts to transform", dim=self._dim())
        state = self._stream_state(src, transductive, stream)
        out = np.empty((src.n, src.dim), dtype=np.float32)
        with self._blas_limit():
            for start, z in self._iter_transform(src, state, stream):
                _check_block(z, start, stream or src.name)
                out[start : start + z.shape[0]] = z
        return out

    def transform_to_file(
        self, texts: SourceLike, path: str | Path, *, transductive: bool = False, stream: str = ""
    ) -> int:
        """Stream substitutes into a float32 ``.npy`` at ``path`` (atomic); returns the row count."""
        src = EmbeddingSource(texts, "texts to transform", dim=self._dim())
        state = self._stream_state(src, transductive, stream)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            # Sequential writes (not a writable memmap) keep resident memory at one chunk.
            header = np.lib.format.header_data_from_array_1_0(np.empty((0, src.dim), dtype=np.float32))
            header["shape"] = (src.n, src.dim)
            np.lib.format.write_array_header_1_0(fh, header)
            with self._blas_limit():
                for start, z in self._iter_transform(src, state, stream):
                    _check_block(z, start, f"{path}")
                    fh.write(np.ascontiguousarray(z, dtype=np.float32).data)
        return src.n

    def fit_transform(self, image_source: SourceLike, text_source: SourceLike) -> np.ndarray:
        return self.fit(image_source, text_source).transform(text_source)

    def _dim(self) -> int:
        self._require_fitted()
        return int(self.meta_["dim"])

    # ----------------------------------------------------------------- persistence
    def save(self, directory: str | Path) -> Path:
        state = self._require_fitted()
        directory = Path(directory)
        arrays = {k: np.ascontiguousarray(v) for k, v in state.items()}
        # Serialised in memory and written by write_bytes_atomic: safetensors' own file writer
        # leaves mode 0600, unlike every other output.
        write_bytes_atomic(directory / STATE_ARRAYS, save(arrays))
        write_json_atomic(
            directory / STATE_JSON,
            {
                "method": self.method,
                "name": self.name,
                "class": f"{type(self).__module__}.{type(self).__qualname__}",
                "params": self.params,
                "modgap_version": __version__,
                "meta": self.meta_,
                "arrays": {k: list(np.shape(v)) for k, v in sorted(state.items())},
            },
        )
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> AlignMethod:
        """Load any registered method's fitted state (``AlignMethod.load`` dispatches on the JSON)."""
        from modgap.align.classes import method_class  # late: the classes import this module

        directory = Path(directory)
        info, arrays = _read_state(directory)
        json_path = directory / STATE_JSON
        if cls is not AlignMethod and info["method"] != cls.method:
            raise InvalidStateError(f"{json_path}: holds a {info['method']!r} state, not {cls.method!r}")
        try:
            klass = method_class(info["method"]) if cls is AlignMethod else cls
            obj = klass(**info["params"])
        except ConfigError as exc:  # an unknown method or parameter, or an invalid value
            raise InvalidStateError(f"{json_path}: {exc}") from exc
        obj.name = info.get("name", obj.method)
        missing = sorted(set(info["arrays"]) - set(arrays))
        if missing:
            raise InvalidStateError(f"{directory / STATE_ARRAYS}: missing arrays {missing} (listed in {json_path})")
        # safetensors does not keep 0-d shapes: restore the recorded ones.
        obj.state_ = {k: np.asarray(v).reshape(info["arrays"][k]) for k, v in arrays.items()}
        obj.meta_ = info["meta"]
        obj.timing_ = {}
        obj._after_load()
        return obj

    # ----------------------------------------------------------------- helpers for subclasses
    def _noise(self, seed: int, stream: str, start: int, n: int, d: int) -> np.ndarray:
        """Standard normal noise for rows ``start..start+n``, independent of chunking."""
        key = zlib.crc32(stream.encode())
        first, last = start // NOISE_BLOCK_ROWS, (start + n - 1) // NOISE_BLOCK_ROWS
        blocks = [
            np.random.default_rng([seed, key, b]).standard_normal((NOISE_BLOCK_ROWS, d)) for b in range(first, last + 1)
        ]
        offset = start - first * NOISE_BLOCK_ROWS
        return np.concatenate(blocks)[offset : offset + n]


def _read_state(directory: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``state.json`` and the arrays of a saved fit; every failure names the file and what is wrong."""
    json_path, arrays_path = directory / STATE_JSON, directory / STATE_ARRAYS
    for path in (json_path, arrays_path):
        if not path.is_file():
            raise MissingInputError(f"{path}: fitted alignment state does not exist (written by `modgap align run`)")
    try:
        info = read_json(json_path)
    except (OSError, ValueError) as exc:  # ValueError: invalid JSON or UTF-8
        raise InvalidStateError(f"{json_path}: unreadable alignment state: {exc}") from exc
    if not isinstance(info, dict):
        raise InvalidStateError(f"{json_path}: expected a JSON object, got {type(info).__name__}")
    kinds = {"method": str, "name": str, "params": dict, "arrays": dict, "meta": dict}
    for key, kind in kinds.items():
        if key not in info and key != "name":  # 'name' is optional (older states)
            raise InvalidStateError(f"{json_path}: lacks the key {key!r}")
        if key in info and not isinstance(info[key], kind):
            raise InvalidStateError(
                f"{json_path}: {key!r} must be a JSON {'string' if kind is str else 'object'}, got {info[key]!r:.60}"
            )
    try:
        arrays = load_file(str(arrays_path))
    except (OSError, SafetensorError) as exc:
        raise InvalidStateError(f"{arrays_path}: unreadable safetensors arrays: {exc}") from exc
    return info, arrays


def _checked_init(init: Any) -> Any:
    """Wrap a subclass ``__init__``: unknown names are a ConfigError (not a TypeError), values are validated.

    ``functools.wraps`` keeps the explicit signature visible to ``inspect`` (and so to scikit-learn).
    """

    @functools.wraps(init)
    def __init__(self: AlignMethod, **params: Any) -> None:
        self._reject_unknown(params)
        init(self, **params)
        self._check_all_params()

    return __init__


def _check_signature(cls: type[AlignMethod]) -> None:
    """A method's ``__init__`` must take exactly its ``PARAMS``, keyword-only, with the same defaults."""
    sig = {k: p for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self"}
    if cls.__init__ is object.__init__:
        sig = {}
    where = f"{cls.__qualname__}.__init__"
    if list(sig) != list(cls.PARAMS):
        raise TypeError(f"{where}: arguments {list(sig)} differ from PARAMS {list(cls.PARAMS)}")
    for key, p in sig.items():
        default = cls.PARAMS[key].default
        if p.kind is not p.KEYWORD_ONLY or p.default != default or type(p.default) is not type(default):
            raise TypeError(f"{where}: {key} must be keyword-only with default {default!r} (PARAMS)")
        if hasattr(cls, key):  # a method or property of that name would be shadowed by the value
            raise TypeError(f"{where}: parameter {key!r} shadows the class attribute {cls.__qualname__}.{key}")
    if cls.method and "chunk_rows" not in cls.PARAMS:
        raise TypeError(f"{cls.__qualname__}: PARAMS lacks chunk_rows (the base class streams with it)")


def _check_block(z: np.ndarray, start: int, where: str) -> None:
    """Substitutes are checked before they are written: a NaN row never reaches a file."""
    finite = np.isfinite(z).all(axis=1)
    if not finite.all():
        first = start + int(np.flatnonzero(~finite)[0])
        raise NonFiniteError(f"{where}: substitutes hold NaN/Inf, first at row {first}; nothing written")
