"""AnisoAlign estimator ([AA] §4; spec alignment-methods 2.10 pseudocode). No public code exists:
every unreported choice is a parameter below with its default and reason."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import torch

from modgap.align.aniso.geometry import PhaseStats, Potential, from_polar, kappa_bound, phase_stats_np, to_polar
from modgap.align.aniso.infer import FastPath, unit_f32_blocks
from modgap.align.aniso.nets import Refiner
from modgap.align.aniso.stage1 import train_score_net
from modgap.align.aniso.stage2 import (
    Bounded,
    GlobalInit,
    perturbation_check,
    quantile_knots,
    train_refiner,
    v_side_matrix,
)
from modgap.align.base import Param
from modgap.align.calibrated import CentroidCalibrated, stream_moments
from modgap.align.frame import fixed_frame
from modgap.paramcheck import ParamError

VARIANTS = ("full", "global_init", "refine", "refine_lii", "refine_lphi")
S = "spec §6 recommendation (unreported in [AA])"

PARAMS: dict[str, Param] = {
    "variant": Param("full", f"[AA] Table 4 row: one of {VARIANTS}"),
    "rank": Param(None, "frame rank r (even); None = 128 for d=1280, else round(d/10) to even (spec §6)"),
    "frame_ridge_scale": Param(1e-6, f"frame ridge lambda = scale*tr/d; does not change eigenvectors; {S}"),
    "polar_eps": Param(1e-8, f"eps in rho = sqrt(a^2 + b^2 + eps); {S}"),
    "mixing": Param("identity", "R in B = Q_U R: 'identity' (pairs q1q2, q3q4, ...) or 'haar' (seeded); spec 2.3 (i)"),
    "graph_degree": Param(4, f"p: top-p partners per block in the phase graph E; {S}"),
    "drift_step": Param(0.05, f"tau: drift step of the perturbation kernel; {S}"),
    "sigma_min": Param(0.01, f"sigma_t = sigma_min (sigma_max/sigma_min)^t, t~U[0,1]; {S}"),
    "sigma_max": Param(1.0, f"see sigma_min; {S}"),
    "wrap_terms": Param(None, "wrapped-normal truncation |n|<=N; None = 3, or 5 if sigma_max > 2 (spec 2.5)"),
    "score_width": Param(512, f"s_phi MLP width (3 hidden layers, SiLU); {S}"),
    "score_depth": Param(3, f"s_phi hidden layers; {S}"),
    "stage1_lr": Param(1e-3, f"AdamW LR for s_phi; {S}"),
    "stage1_batch": Param(1024, f"Stage I batch; {S}"),
    "stage1_steps": Param(20_000, f"Stage I steps; {S} (use ~1500 on the embedded tier: 1.5k images)"),
    "stage1_ema": Param(0.999, f"EMA decay of the frozen s_phi; {S}"),
    "stage1_max_rows": Param(1_000_000, "at most this many images (seeded subsample) held for Stage I: memory bound"),
    "quantile_knots": Param(1024, "knots per block of the radial quantile tables (spec 2.6)"),
    "v_eps": Param(1e-12, "eps in D_V = sd_x/(sd_y + eps)"),
    "v_basis": Param("eigen", "basis of sd_V: 'eigen' (Q_V coordinates, stays in V; spec rec.) or 'ambient'"),
    "refiner_width": Param(
        256,
        "g_eta MLP width; spec §6 suggests 1024, we use 256 so transform reaches ~20k vectors/s on this 2-core CPU "
        "at d=256 (the MLP dominates; output is a bounded 2m-dim correction, so little capacity is needed); "
        "set 1024 for the spec value",
    ),
    "refiner_depth": Param(2, f"g_eta hidden layers; {S}"),
    "stage2_lr": Param(1e-4, f"AdamW LR for g_eta; {S}"),
    "stage2_batch": Param(1024, f"Stage II batch; {S}"),
    "stage2_epochs": Param(5, f"epochs over the text set; {S} (use more on the small embedded tier)"),
    "stage2_max_rows": Param(262_144, "at most this many stats texts (seeded subsample) held for Stage II (memory)"),
    "bound_theta": Param(0.25, f"alpha_theta (rad); {S}"),
    "bound_rho": Param(0.2, f"alpha_rho; {S}"),
    "bound_v": Param(0.0, "alpha_v; 0 because no loss depends on v^ as written (spec 2.7 obs. 1)"),
    "v_reproject": Param(False, "re-project the bounded V update onto V after tanh (spec 2.7 obs. 2 variant)"),
    "lambda_phi": Param(None, "weight of L_Phi; None = |E| (sum of omega is 1, so L_Phi <= 2/|E| is tiny; spec 2.8)"),
    "full_with_base": Param(False, "add L_base (MMD^2) to the full objective (spec 2.11 variant)"),
    "recalibrate": Param(True, "final centroid calibration n(e' - mu^ + mu_i) ([AA] §4.4)"),
    "seed": Param(0, "seed for subsamples, R (haar) and both trainings"),
    "check_rows": Param(512, "fit-text rows used for the logged Lemma A.4 perturbation check"),
    "chunk_rows": Param(10_000, "rows per streamed chunk; speed only"),
    "torch_threads": Param(
        1,
        "torch intra-op threads during fit/transform: these small MLPs run ~30x slower with 2 threads on a "
        "loaded 2-core machine (oversubscription); raise on a dedicated multi-core host",
    ),
}


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def default_rank(d: int) -> int:
    if d == 1280:
        return 128
    r = max(2, round(d / 10))
    return r + (r % 2)


class AnisoAlign(CentroidCalibrated):
    """AnisoAlign: fixed frame, blockwise polar form, Stage I phase prior, Stage II init + bounded refinement."""

    method = "anisoalign"
    min_fit_rows = 2

    def _min_fit_rows(self, dim: int) -> int:
        return dim + 1  # the frame is the eigenbasis of a d x d covariance: d + 1 rows for full rank

    PARAMS: ClassVar[dict[str, Param]] = PARAMS

    def __init__(
        self,
        *,
        variant: str = "full",
        rank: int | None = None,
        frame_ridge_scale: float = 1e-6,
        polar_eps: float = 1e-8,
        mixing: str = "identity",
        graph_degree: int = 4,
        drift_step: float = 0.05,
        sigma_min: float = 0.01,
        sigma_max: float = 1.0,
        wrap_terms: int | None = None,
        score_width: int = 512,
        score_depth: int = 3,
        stage1_lr: float = 1e-3,
        stage1_batch: int = 1024,
        stage1_steps: int = 20_000,
        stage1_ema: float = 0.999,
        stage1_max_rows: int = 1_000_000,
        quantile_knots: int = 1024,
        v_eps: float = 1e-12,
        v_basis: str = "eigen",
        refiner_width: int = 256,
        refiner_depth: int = 2,
        stage2_lr: float = 1e-4,
        stage2_batch: int = 1024,
        stage2_epochs: int = 5,
        stage2_max_rows: int = 262_144,
        bound_theta: float = 0.25,
        bound_rho: float = 0.2,
        bound_v: float = 0.0,
        v_reproject: bool = False,
        lambda_phi: float | None = None,
        full_with_base: bool = False,
        recalibrate: bool = True,
        seed: int = 0,
        check_rows: int = 512,
        chunk_rows: int = 10_000,
        torch_threads: int = 1,
    ) -> None:
        self._set_init_params(locals())
        # Fit-time objects (not hyper-parameters): rebuilt by fit() or load().
        self._bounded: Bounded | None = None
        self._fast_path: FastPath | None = None
        self._log: dict[str, Any] = {}

    def _check_params(self):
        p = self.params
        if p["variant"] not in VARIANTS:
            raise ParamError("variant", f"must be one of {VARIANTS}", "align method 'anisoalign'")
        if p["mixing"] not in ("identity", "haar"):
            raise ParamError(
                "mixing", "must be 'identity' or 'haar' (learned R is not implemented)", "align method 'anisoalign'"
            )
        if p["v_basis"] not in ("eigen", "ambient"):
            raise ParamError("v_basis", "must be 'eigen' or 'ambient'", "align method 'anisoalign'")
        if p["rank"] is not None and int(p["rank"]) % 2:
            raise ParamError("rank", f"must be even, got {p['rank']}", "align method 'anisoalign'")
        for key in ("bound_theta", "bound_rho", "bound_v"):
            if float(p[key]) < 0:
                raise ParamError(key, "must be >= 0", "align method 'anisoalign'")

    @property
    def _trains(self) -> bool:
        return self.params["variant"] != "global_init"

    # ------------------------------------------------------------------ fit
    def _fit(self, images, texts):
        with torch_threads(self.params["torch_threads"]):
            return self._fit_impl(images, texts)

    def _fit_impl(self, images, texts):
        p, seed = self.params, int(self.params["seed"])
        self._fast_path = None
        rng = np.random.default_rng(seed)
        ix = stream_moments(images, self.chunk_rows, with_cov=True)
        ty = stream_moments(texts, self.chunk_rows, with_cov=True)
        mu_i, mu_t = ix.mean, ty.mean
        d = images.dim
        rank = default_rank(d) if p["rank"] is None else int(p["rank"])
        frame = fixed_frame(ty.cov, ix.cov, rank=rank, ridge_scale=float(p["frame_ridge_scale"]), even=True)
        r = frame.rank
        mixing = np.eye(r)
        if p["mixing"] == "haar":
            q, rr = np.linalg.qr(rng.standard_normal((r, r)))
            mixing = q * np.sign(np.diag(rr))
        basis = frame.q_u @ mixing
        eps = float(p["polar_eps"])

        # Image polar coordinates (raw, uncentred; Stage I data and the target radius CDFs).
        img = images.rows(_subsample(images.n, int(p["stage1_max_rows"]), rng))
        rho_x, th_x = to_polar(img @ basis, eps)
        stats = phase_stats_np(rho_x, th_x, int(p["graph_degree"]))
        txt = texts.rows(_subsample(texts.n, int(p["stage2_max_rows"]), rng))
        rho_y, _ = to_polar((txt - mu_t + mu_i) @ basis, eps)
        knots = int(p["quantile_knots"])
        v_matrix, v_scale = v_side_matrix(frame.q_u, frame.q_v, ix.cov, ty.cov, p["v_basis"], float(p["v_eps"]))
        init = GlobalInit(
            basis=basis,
            mu_t=mu_t,
            mu_i=mu_i,
            knots_y=quantile_knots(rho_y, knots),
            knots_x=quantile_knots(rho_x, knots),
            v_matrix=v_matrix,
            v_offset=mu_i - frame.q_u @ (frame.q_u.T @ mu_i),
            eps=eps,
        )
        state: dict[str, np.ndarray] = {
            "mu_x": mu_i,
            "mu_t": mu_t,
            "basis": basis,
            "q_u": frame.q_u,
            "knots_y": init.knots_y,
            "knots_x": init.knots_x,
            "v_matrix": init.v_matrix,
            "v_offset": init.v_offset,
            "frame_eig": frame.eig,
            "v_scale": v_scale if v_scale is not None else np.zeros(0),
            "phase_anchor": stats.anchor,
            "phase_block_weight": stats.block_weight,
            "phase_edges": stats.edges.astype(np.float64),
            "phase_edge_amp": stats.edge_amp,
            "phase_edge_offset": stats.edge_offset,
        }
        self._log = {"rank": r, "n_blocks": r // 2, "n_edges": len(stats.edges)}
        self._init = init
        self._bounded = Bounded(None, torch.as_tensor(frame.q_u, dtype=torch.float32), p)
        if self._trains:
            self._train(init, txt, rho_x, th_x, img @ basis, stats, state, seed)
        self._state_in_fit = state
        self._fit_calibration(texts, state)
        self._log["perturbation"] = self._check(txt[: int(p["check_rows"])], state)
        return state

    def _train(self, init, txt, rho_x, th_x, coords_x, stats: PhaseStats, state, seed):
        p = self.params
        potential = Potential(stats)
        _, use_lii, _ = _terms(p)
        score_net = None
        if use_lii:
            score_net, log1 = train_score_net(
                torch.as_tensor(th_x, dtype=torch.float32),
                torch.as_tensor(np.log(rho_x), dtype=torch.float32),
                potential,
                p,
                seed,
            )
            self._log.update(log1)
            state.update(_prefixed("s_phi.", score_net.state_dict()))
        torch.manual_seed(seed + 2)
        m, d = init.basis.shape[1] // 2, init.basis.shape[0]
        refiner = Refiner(m, d, int(p["refiner_width"]), int(p["refiner_depth"]), float(p["bound_v"]) > 0)
        self._bounded = Bounded(refiner, self._bounded.q_u, p)
        self._fast_path = None
        theta0, rho0, v0 = (torch.as_tensor(a, dtype=torch.float32) for a in init(txt))
        self._log.update(
            train_refiner(
                (theta0, rho0, v0),
                torch.as_tensor(coords_x, dtype=torch.float32),
                self._bounded,
                score_net,
                potential,
                stats,
                p,
                seed,
            )
        )
        refiner.eval()
        for q in refiner.parameters():
            q.requires_grad_(False)
        state.update(_prefixed("g_eta.", refiner.state_dict()))

    def _check(self, y: np.ndarray, state) -> dict[str, float]:
        """Lemma A.4 bounded-perturbation log on fit texts (relative to the global initialisation)."""
        theta0, rho0, v0 = self._init(y)
        y0 = from_polar(rho0, theta0) @ self._init.basis.T + v0
        th, rh, vv, leak = self._refine(theta0, rho0, v0)
        z = from_polar(rh, th) @ self._init.basis.T + vv
        kappa = kappa_bound(float(self.params["bound_theta"]), float(self.params["bound_rho"])) if self._trains else 0.0
        bound_v = float(self.params["bound_v"]) if self._trains else 0.0
        return perturbation_check(y0, z, leak, kappa, bound_v, y.shape[1])

    def _extra_meta(self):
        return {"aniso": self._log}

    # ------------------------------------------------------------------ transform
    def _refine(self, theta0, rho0, v0):
        """Bounded refinement in float32 torch (identity for the global-init variant); float64 out."""
        if self._bounded is None or self._bounded.refiner is None:
            return theta0, rho0, v0, None
        with torch.no_grad(), torch_threads(self.params["torch_threads"]):
            th, rh, vv, leak = self._bounded(*(torch.as_tensor(a, dtype=torch.float32) for a in (theta0, rho0, v0)))
        out = [t.double().numpy() for t in (th, rh, vv)]
        return out[0], out[1], out[2], None if leak is None else leak.numpy()

    def _fast(self) -> FastPath:
        if getattr(self, "_fast_path", None) is None:
            st = self.state_ if self.state_ is not None else self._state_in_fit
            scale = st["v_scale"] if st["v_scale"].size else None
            self._fast_path = FastPath(self._init, self._bounded, st["q_u"], scale)
        return self._fast_path

    def _pre(self, y, state, start, stream):
        with torch_threads(self.params["torch_threads"]):
            return self._fast()(y).double().numpy()

    def _transform_block(self, y, start, state, stream):
        shift = state["mu_x"] - state["mu_hat"] if self._calibrate() else None
        with torch_threads(self.params["torch_threads"]):
            return self._fast()(y, shift).numpy()

    def _iter_transform(self, src, state, stream):
        """Raw float32 row blocks straight into the fast path (no float64 unit-row copy of each chunk)."""
        shift = torch.as_tensor(state["mu_x"] - state["mu_hat"], dtype=torch.float32) if self._calibrate() else None
        fast = self._fast()
        for start, x, inv_norm in unit_f32_blocks(src, self.chunk_rows):
            with torch_threads(self.params["torch_threads"]):
                z = fast.block(x, inv_norm, shift)
            yield start, z.numpy()

    def _after_load(self):
        st, p = self.state_, self.params
        self._init = GlobalInit(
            basis=st["basis"],
            mu_t=st["mu_t"],
            mu_i=st["mu_x"],
            knots_y=st["knots_y"],
            knots_x=st["knots_x"],
            v_matrix=st["v_matrix"],
            v_offset=st["v_offset"],
            eps=float(p["polar_eps"]),
        )
        q_u = torch.as_tensor(st["q_u"], dtype=torch.float32)
        refiner = None
        if self._trains:
            m, d = st["basis"].shape[1] // 2, st["basis"].shape[0]
            refiner = Refiner(m, d, int(p["refiner_width"]), int(p["refiner_depth"]), float(p["bound_v"]) > 0)
            refiner.load_state_dict(_unprefixed("g_eta.", st))
            refiner.eval()
        self._bounded = Bounded(refiner, q_u, p)
        self._fast_path = None


def _terms(p):
    from modgap.align.aniso.stage2 import loss_terms

    return loss_terms(p["variant"], bool(p["full_with_base"])) if p["variant"] != "global_init" else (False,) * 3


def _subsample(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= cap else rng.choice(n, cap, replace=False)


def _prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {prefix + k: v.detach().cpu().numpy().copy() for k, v in tensors.items()}


def _unprefixed(prefix: str, state: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: torch.from_numpy(np.array(v)) for k, v in state.items() if k.startswith(prefix)}
