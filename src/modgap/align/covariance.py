"""Covariance-based operators: per-dimension standardisation, CORAL and blockwise whitening-colouring
(spec alignment-methods 3.7-3.9). All statistics are float64 and streamed (O(d^2) memory)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from modgap.align.base import Param
from modgap.align.baselines import CHUNK
from modgap.align.calibrated import CentroidCalibrated, stream_moments
from modgap.align.frame import fixed_frame
from modgap.align.source import unit_rows_unchecked
from modgap.errors import InvalidEmbeddingsError
from modgap.paramcheck import ParamError
from modgap.stats.symmat import eigh_desc, relative_ridge, sym_power

RIDGE = Param(
    1e-6,
    "relative ridge: lambda = ridge_scale * tr(Sigma)/dim per matrix (spec 3.7/3.9; the absolute unit ridge "
    "of original CORAL would swamp eigenvalues ~1e-3; the authors' unused --cov_ridge 1e-6 hints at 1e-6)",
)


def _covs(method: CentroidCalibrated, images, texts):
    ix = stream_moments(images, method.chunk_rows, with_cov=True)
    ty = stream_moments(texts, method.chunk_rows, with_cov=True)
    for src, cov in ((images, ix.cov), (texts, ty.cov)):
        # The relative ridge is a fraction of tr(Sigma): a set of identical rows has no scale to match.
        if not np.trace(cov) > 0:
            raise InvalidEmbeddingsError(f"{src.name}: all rows are identical (zero covariance); cannot match scales")
    return ix.mean, ix.cov, ty.mean, ty.cov


class Standardise(CentroidCalibrated):
    """Per-dimension standardisation (spec 3.8): z = n(mu_x + (sd_x/(sd_y + eps)) * (y - mu_y)).

    ``basis='eigen'`` applies the diagonal scaling in the eigenbasis of Sigma_x + Sigma_y instead of
    the (arbitrary) ambient coordinates.
    """

    method = "standardise"
    min_fit_rows = 2
    PARAMS: ClassVar[dict[str, Param]] = {
        "eps": Param(1e-12, "guard for zero text variance (spec 3.8)"),
        "basis": Param("ambient", "'ambient' coordinates or 'eigen' (eigenbasis of Sigma_x + Sigma_y)"),
        "recalibrate": Param(False, "apply ReAlign-style centroid recalibration afterwards (spec: optional)"),
        "chunk_rows": CHUNK,
    }

    def __init__(
        self,
        *,
        eps: float = 1e-12,
        basis: str = "ambient",
        recalibrate: bool = False,
        chunk_rows: int = 10_000,
    ) -> None:
        self._set_init_params(locals())

    def _check_params(self):
        if self.params["basis"] not in ("ambient", "eigen"):
            raise ParamError("basis", "must be 'ambient' or 'eigen'", "align method 'standardise'")

    def _fit(self, images, texts):
        mu_x, cov_x, mu_y, cov_y = _covs(self, images, texts)
        if self.params["basis"] == "eigen":
            _, basis = eigh_desc(cov_x + cov_y)
        else:
            basis = np.eye(images.dim)
        sd_x = np.sqrt(np.clip(np.einsum("ij,jk,ki->i", basis.T, cov_x, basis), 0, None))
        sd_y = np.sqrt(np.clip(np.einsum("ij,jk,ki->i", basis.T, cov_y, basis), 0, None))
        scale = sd_x / (sd_y + float(self.params["eps"]))
        state = {"mu_x": mu_x, "mu_y": mu_y, "matrix": (basis * scale) @ basis.T}
        if self._calibrate():
            self._fit_calibration(texts, state)
        return state

    def _pre(self, y, state, start, stream):
        return unit_rows_unchecked(state["mu_x"] + (y - state["mu_y"]) @ state["matrix"].T)


class Coral(CentroidCalibrated):
    """Full-covariance matching / CORAL = T_Sigma (spec 3.9): z = n(mu_x + C_x^{1/2} C_y^{-1/2} (y - mu_y))."""

    method = "coral"
    min_fit_rows = 2

    def _min_fit_rows(self, dim: int) -> int:
        return dim + 1  # a full d x d covariance has rank <= n - 1: d + 1 rows for it to be invertible

    PARAMS: ClassVar[dict[str, Param]] = {
        "ridge_scale": RIDGE,
        "recalibrate": Param(False, "apply ReAlign-style centroid recalibration afterwards (spec: optional)"),
        "chunk_rows": CHUNK,
    }

    def __init__(
        self,
        *,
        ridge_scale: float = 1e-6,
        recalibrate: bool = False,
        chunk_rows: int = 10_000,
    ) -> None:
        self._set_init_params(locals())

    def _fit(self, images, texts):
        mu_x, cov_x, mu_y, cov_y = _covs(self, images, texts)
        scale = float(self.params["ridge_scale"])
        colour = sym_power(cov_x, 0.5, relative_ridge(cov_x, scale))
        whiten = sym_power(cov_y, -0.5, relative_ridge(cov_y, scale))
        state = {"mu_x": mu_x, "mu_y": mu_y, "matrix": colour @ whiten}
        if self._calibrate():
            self._fit_calibration(texts, state)
        return state

    def _pre(self, y, state, start, stream):
        return unit_rows_unchecked(state["mu_x"] + (y - state["mu_y"]) @ state["matrix"].T)


class Blockwise(CentroidCalibrated):
    """Blockwise whitening-colouring, BC ([RA] App. F.1-F.3; spec 3.7).

    1. e~ = n(y - mu_y + mu_x). 2. In the fixed U/V frame, T_B = S*_B^{1/2} S_{B,a}^{-1/2} per block B
    (target = image covariance, a = covariance of e~), e^ = n(T_U P_U e~ + T_V P_V e~). 3. n(e^ - mu^ + mu_x).
    """

    method = "blockwise"
    min_fit_rows = 2

    def _min_fit_rows(self, dim: int) -> int:
        return dim + 1  # a full d x d covariance has rank <= n - 1: d + 1 rows for it to be invertible

    PARAMS: ClassVar[dict[str, Param]] = {
        "rank": Param(None, "frame rank r; None = energy threshold below (the paper leaves r unspecified)"),
        "energy": Param(0.90, "theta_E of the energy-threshold frame (gap-theory 1.1 recommendation)"),
        "ridge_scale": RIDGE,
        "centred": Param(
            False, "False = T acts on the uncentred vector as written; True = on centred vectors + target block mean"
        ),
        "chunk_rows": CHUNK,
    }

    def __init__(
        self,
        *,
        rank: int | None = None,
        energy: float = 0.90,
        ridge_scale: float = 1e-6,
        centred: bool = False,
        chunk_rows: int = 10_000,
    ) -> None:
        self._set_init_params(locals())

    def _fit(self, images, texts):
        mu_x, cov_x, mu_y, cov_y = _covs(self, images, texts)
        rank = self.params["rank"]
        frame = fixed_frame(cov_y, cov_x, rank=rank, energy=float(self.params["energy"]))
        shifted = stream_moments(
            texts, self.chunk_rows, with_cov=True, fn=lambda y: unit_rows_unchecked(y - mu_y + mu_x)
        )
        scale = float(self.params["ridge_scale"])
        matrix = np.zeros((images.dim, images.dim))
        for q in (frame.q_u, frame.q_v):
            s_target, s_source = q.T @ cov_x @ q, q.T @ shifted.cov @ q
            t = sym_power(s_target, 0.5, relative_ridge(s_target, scale)) @ sym_power(
                s_source, -0.5, relative_ridge(s_source, scale)
            )
            matrix += q @ t @ q.T
        state = {"mu_x": mu_x, "mu_y": mu_y, "mu_a": shifted.mean, "matrix": matrix, "q_u": frame.q_u}
        self._fit_calibration(texts, state)
        return state

    def _extra_meta(self):
        return {"frame_rank": int(self.state_["q_u"].shape[1])}

    def _pre(self, y, state, start, stream):
        e = unit_rows_unchecked(y - state["mu_y"] + state["mu_x"])
        if self.params["centred"]:
            return unit_rows_unchecked((e - state["mu_a"]) @ state["matrix"].T + state["mu_x"])
        return unit_rows_unchecked(e @ state["matrix"].T)
