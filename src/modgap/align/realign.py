"""ReAlign: Anchor -> Trace -> Centroid alignment ([RA] §4, App. B.6; spec alignment-methods 1).

Operator (exactly as specified, float64 throughout):
  1. anchor:   e. = (y - mu_y) + mu_x
  2. trace:    e~ = mu_x + s (y - mu_y), s = sqrt(T_x / (T_y + eps)),  e' = n(e~)
  3. centroid: e'' = e' - mu' + mu_x, mu' = E[e'] over the fit text set,  e^ = n(e'')
with T = E||e - mu||^2 = tr(Sigma) of the unit rows of each modality.

Streaming with fewer passes than the authors' four (spec 1.4): the mean and T of a modality come
from one pass, using E||e - mu||^2 = E||e||^2 - ||mu||^2 with E||e||^2 accumulated from the actual
row norms (cross-checked against T = 1 - ||mu||^2, spec 1.1); mu' needs a second text pass; pass 4
is ``transform``. The normalised rows are never materialised: every step is an affine combination
a_i x_i + beta_i b + gamma_i c of the raw row x_i, so a fit block costs one float64 cast, its row
norms and matrix-vector products (BLAS), and a transform block adds one in-place rank-2 dgemm and one
fused scale-and-cast to float32. The float64 ``_transform_raw_f64`` is the reference form (tests).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import ClassVar

import numpy as np
from scipy.linalg.blas import dgemm

from modgap.align.base import AlignMethod, Param
from modgap.align.source import EmbeddingSource, raw_chunks, unit_rows_unchecked
from modgap.errors import InvalidEmbeddingsError
from modgap.paramcheck import ParamError
from modgap.validate import check_embeddings

STEPS = ("full", "anchor", "anchor_trace")
# Rows per inner block: a float64 copy of 1024 x 1280 is 10 MB, small enough to stay mostly cached
# between the cast, the row norms and the matrix-vector products.
INNER_ROWS = 1024


def raw_blocks(src: EmbeddingSource, chunk_rows: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield ``(start, x, sq)``: float64 raw rows and their squared norms, validated (NaN/Inf/zero)."""
    for start, chunk in raw_chunks(src.array, chunk_rows):
        for off in range(0, chunk.shape[0], INNER_ROWS):
            x = np.array(chunk[off : off + INNER_ROWS], dtype=np.float64)  # always a copy: transform writes into it
            sq = np.einsum("ij,ij->i", x, x)
            if not (np.all(np.isfinite(sq)) and np.all(sq > 0)):
                check_embeddings(np.asarray(chunk[off : off + INNER_ROWS]), src.name, start_row=start + off)
                raise InvalidEmbeddingsError(
                    f"{src.name}: squared row norm overflows float64 near row {start + off}; rescale the input"
                )
            yield start + off, x, sq


def mean_and_trace(src: EmbeddingSource, chunk_rows: int) -> tuple[np.ndarray, float, float]:
    """One pass: mean of the unit rows, T = E||e||^2 - ||mu||^2, and E||e||^2 (should be 1)."""
    total = np.zeros(src.dim)
    sq_total = 0.0
    for _, x, sq in raw_blocks(src, chunk_rows):
        w = 1.0 / np.sqrt(sq)
        total += w @ x  # sum of x_i / ||x_i||
        sq_total += float(np.sum(w * w * sq))
    mu = total / src.n
    mean_sq = sq_total / src.n
    return mu, mean_sq - float(mu @ mu), mean_sq


class ReAlign(AlignMethod):
    """ReAlign ([RA]); ``steps`` selects the Table 5 ablations ('anchor' = n(e.), 'anchor_trace' = e')."""

    method = "realign"
    min_fit_rows = 2  # a trace (variance) needs two rows; one row gives T = 0 and a 0 or infinite scale
    set_mean_key = "mu_p"
    PARAMS: ClassVar[dict[str, Param]] = {
        "steps": Param("full", "'full' | 'anchor' (= n(e.), step 1 + renormalise) | 'anchor_trace' (= e')"),
        "eps": Param(1e-10, "eps in s = sqrt(T_x/(T_y + eps)) (the authors' code value)"),
        "float32_means": Param(
            False, "code-fidelity mode: cast mu_x, mu_y to float32 after float64 accumulation, as the authors' code"
        ),
        "chunk_rows": Param(10_000, "rows per streamed chunk (the authors' value); affects speed only"),
        "blas_threads": Param(
            1,
            "BLAS threads during fit/transform: the products here are memory-bound matrix-vector ones, and a "
            "second OpenBLAS thread spin-waits badly on a shared 2-core machine (measured 2-5x slower)",
        ),
    }

    def __init__(
        self,
        *,
        steps: str = "full",
        eps: float = 1e-10,
        float32_means: bool = False,
        chunk_rows: int = 10_000,
        blas_threads: int | None = 1,
    ) -> None:
        self._set_init_params(locals())

    def _check_params(self):
        if self.params["steps"] not in STEPS:
            raise ParamError("steps", f"must be one of {STEPS}", "align method 'realign'")

    # ------------------------------------------------------------------ fit
    def _fit(self, images, texts):
        mu_y, t_y, msq_y = mean_and_trace(texts, self.chunk_rows)
        mu_x, t_x, msq_x = mean_and_trace(images, self.chunk_rows)
        for name, t, mu in (("text", t_y, mu_y), ("image", t_x, mu_x)):
            # Spec 1.1 cross-check: for unit rows T = 1 - ||mu||^2.
            if abs(t - (1.0 - mu @ mu)) > 1e-10:
                raise InvalidEmbeddingsError(f"realign: {name} trace cross-check failed ({t} vs {1 - mu @ mu})")
        if self.params["float32_means"]:
            mu_x, mu_y = mu_x.astype(np.float32).astype(np.float64), mu_y.astype(np.float32).astype(np.float64)
        # eps guards a division, not a degenerate set: identical rows (T = 0) cannot be rescaled.
        for name, t in (("image", t_x), ("text", t_y)):
            if not t > 1e-12:
                raise InvalidEmbeddingsError(f"realign: {name} statistics set has zero spread (trace T = {t:.3g})")
        s = float(np.sqrt(t_x / (t_y + float(self.params["eps"]))))
        if not (np.isfinite(s) and s > 0):
            raise InvalidEmbeddingsError(f"realign: trace scale s = {s} is not positive (T_x={t_x}, T_y={t_y})")
        state = {
            "mu_x": mu_x,
            "mu_y": mu_y,
            "trace_x": np.float64(t_x),
            "trace_y": np.float64(t_y),
            "scale": np.float64(s),
            "mean_sq_norm": np.array([msq_x, msq_y]),
        }
        state["mu_p"] = self._mean_projected(texts, state) if self.params["steps"] == "full" else np.zeros_like(mu_x)
        return state

    def _affine(self, state: Mapping[str, np.ndarray]) -> tuple[float, np.ndarray]:
        """(a, b) with e~ = a * e + b: the trace step (a = s) or the anchor step (a = 1)."""
        a = 1.0 if self.params["steps"] == "anchor" else float(state["scale"])
        return a, state["mu_x"] - a * state["mu_y"]

    def _projected_coeffs(self, x, sq, state, xb=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """e'_i = alpha_i x_i + beta_i b (alpha, beta, b) for raw rows x with squared norms sq."""
        a, b = self._affine(state)
        w = 1.0 / np.sqrt(sq)
        if xb is None:
            xb = x @ b
        norm = np.sqrt(a * a * w * w * sq + 2 * a * w * xb + b @ b)  # ||a w x + b||
        return a * w / norm, 1.0 / norm, b

    def _mean_projected(self, texts: EmbeddingSource, state) -> np.ndarray:
        total = np.zeros(texts.dim)
        for _, x, sq in raw_blocks(texts, self.chunk_rows):
            alpha, beta, b = self._projected_coeffs(x, sq, state)
            total += alpha @ x + beta.sum() * b
        return total / texts.n

    def _extra_meta(self):
        st = self.state_
        return {
            "trace_stats": {
                "trace_txt": float(st["trace_y"]),
                "trace_img": float(st["trace_x"]),
                "scale": float(st["scale"]),
                "in_sample_bound_h": float(np.linalg.norm(st["mu_x"] - st["mu_p"])),
            }
        }

    # ------------------------------------------------------------------ transform
    def _pre_calibration(self, y, start, state, stream):
        a, b = self._affine(state)
        return unit_rows_unchecked(a * y + b)

    def _transform_block(self, y, start, state, stream):
        return self._transform_raw_f64(y.copy(), np.einsum("ij,ij->i", y, y), state)

    def _coefficients(self, x: np.ndarray, sq: np.ndarray, state: Mapping[str, np.ndarray]):
        """(alpha, beta, gamma, b, c) with substitute_i = alpha_i x_i + beta_i b + gamma_i c (raw rows x)."""
        _, b = self._affine(state)
        c = state["mu_x"] - state["mu_p"] if self.params["steps"] == "full" else np.zeros_like(b)
        xb, xc = x @ b, x @ c  # two gemv beat one (n, d) @ (d, 2) gemm here
        alpha, beta, _ = self._projected_coeffs(x, sq, state, xb)
        if self.params["steps"] != "full":
            return alpha, beta, np.zeros_like(alpha), b, c
        # e'' = alpha x + beta b + c; its norm from the expansion.
        q2 = (
            alpha * alpha * sq
            + beta * beta * (b @ b)
            + c @ c
            + 2 * alpha * beta * xb
            + 2 * alpha * xc
            + 2 * beta * (b @ c)
        )
        inv = 1.0 / np.sqrt(q2)
        return alpha * inv, beta * inv, inv, b, c

    def _transform_raw_f64(self, x: np.ndarray, sq: np.ndarray, state: Mapping[str, np.ndarray]) -> np.ndarray:
        """Float64 substitutes for raw float64 rows ``x`` (overwritten: the caller's scratch copy)."""
        alpha, beta, gamma, b, c = self._coefficients(x, sq, state)
        x *= alpha[:, None]
        x += np.stack([beta, gamma], axis=1) @ np.stack([b, c])
        return x

    def _transform_raw_f32(self, x: np.ndarray, sq: np.ndarray, state: Mapping[str, np.ndarray]) -> np.ndarray:
        """Same operator, written straight to float32 with two fused passes over the block:
        x += [b c] [beta/alpha gamma/alpha]^T in place (one dgemm with beta=1), then alpha * x -> float32."""
        alpha, beta, gamma, b, c = self._coefficients(x, sq, state)
        coef = np.stack([beta / alpha, gamma / alpha])  # (2, n)
        xt = dgemm(1.0, np.stack([b, c], axis=1), coef, beta=1.0, c=x.T, overwrite_c=1)  # x^T is F-ordered
        out = np.empty(x.shape, dtype=np.float32)
        np.multiply(xt.T, alpha[:, None], out=out, casting="unsafe")
        return out

    def _iter_transform(self, src: EmbeddingSource, state, stream: str):
        for start, x, sq in raw_blocks(src, self.chunk_rows):
            yield start, self._transform_raw_f32(x, sq, state)
