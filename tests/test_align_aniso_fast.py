"""AnisoAlign's fused float32 inference path equals the straightforward operator (align/aniso/infer.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modgap.align import AlignMethod, make
from modgap.align.aniso.infer import Affine, QuantileMap, reference_transform
from modgap.align.source import unit_rows
from modgap.errors import InvalidEmbeddingsError
from test_align_data import gapped

D = 48  # large enough that D_V is a real (d - r) x (d - r) operator, small enough to fit in seconds
X = gapped(1500, d=D, seed=1, modality="image")
Y = gapped(1300, d=D, seed=2)
FAST = {"rank": 8, "stage1_steps": 30, "stage1_batch": 128, "stage2_epochs": 3, "stage2_batch": 128}
# A large LR so the zero-initialised refiner really moves the output.
TRAINED = {**FAST, "stage2_lr": 3e-2}


def _reference(model, y: np.ndarray, calibrated: bool = True) -> np.ndarray:
    st = model.state_
    shift = st["mu_x"] - st["mu_hat"] if calibrated else None
    return reference_transform(model._init, model._bounded, unit_rows(y), shift)


@pytest.mark.parametrize(
    "params",
    [
        {"variant": "full"},  # spec default: eigen V basis
        {"variant": "full", "v_basis": "ambient"},
        {"variant": "full", "bound_v": 0.01},  # the d_v head and its leaky V update
        {"variant": "full", "bound_v": 0.01, "v_reproject": True},
        {"variant": "refine", "refiner_depth": 0},  # g_eta a single Linear: no hidden layers to run
        {"variant": "global_init"},
    ],
)
def test_fast_path_equals_reference_operator(params):
    model = make("anisoalign", {**TRAINED, **params}).fit(X, Y)
    out = model.transform(Y)
    ref = _reference(model, Y)
    assert np.abs(out - ref).max() <= 1e-5
    assert np.abs(np.linalg.norm(out, axis=1) - 1).max() <= 1e-6
    # the pre-calibration rows (mu_hat at fit, transductive means) take the same path
    pre = model._fast()(unit_rows(Y)).numpy()
    assert np.abs(pre - _reference(model, Y, calibrated=False)).max() <= 1e-5
    if params["variant"] != "global_init":  # the refinement is really exercised
        init_only = make("anisoalign", {**TRAINED, "variant": "global_init"}).fit(X, Y)
        assert np.abs(ref - _reference(init_only, Y)).max() > 1e-3


def test_save_load_transform_identical_and_streaming(tmp_path):
    model = make("anisoalign", TRAINED).fit(X, Y)
    before = model.transform(Y)
    model.save(tmp_path / "m")
    loaded = AlignMethod.load(tmp_path / "m")
    assert np.array_equal(loaded.transform(Y), before)
    np.save(tmp_path / "y.npy", Y)
    loaded.transform_to_file(tmp_path / "y.npy", tmp_path / "z.npy")
    assert np.array_equal(np.load(tmp_path / "z.npy"), before)
    # row blocks and chunks only change how the rows are grouped
    small = make("anisoalign", {**TRAINED, "chunk_rows": 97}).fit(X, Y)
    assert np.abs(small.transform(Y) - before).max() <= 5e-6


def test_raw_rows_are_normalised_and_validated():
    model = make("anisoalign", TRAINED).fit(X, Y)
    base = model.transform(Y[:200])
    assert np.abs(model.transform(3.0 * Y[:200]) - base).max() <= 5e-6
    assert np.abs(model.transform(Y[:200].astype(np.float64)) - base).max() <= 5e-6
    huge = Y[:200] * np.float32(1e30)  # finite, but the float32 squared norm overflows
    assert np.abs(model.transform(huge) - base).max() <= 5e-6
    bad = Y[:200].copy()
    bad[37, 3] = np.nan
    with pytest.raises(InvalidEmbeddingsError, match="37"):
        model.transform(bad)
    bad[37] = 0.0
    with pytest.raises(InvalidEmbeddingsError):
        model.transform(bad)


def test_quantile_map_is_np_interp():
    rng = np.random.default_rng(0)
    xp = np.sort(rng.gamma(2.0, 1.0, (5, 37)), axis=1)
    xp[1, 10:14] = xp[1, 10]  # tied knots
    fp = np.sort(rng.uniform(0, 3, (5, 37)), axis=1)
    x = rng.uniform(-1, 12, (400, 5))
    x[:5] = xp[:, 0]  # exactly on the ends
    x[5:10] = xp[:, -1]
    qm = QuantileMap(xp, fp)
    got = qm(torch.as_tensor(x, dtype=torch.float32)).numpy()
    want = np.stack([np.interp(x[:, k], xp[k], fp[k]) for k in range(5)], axis=1)
    tied = (x[:, 1] > xp[1, 9]) & (x[:, 1] < xp[1, 14])
    assert np.abs(got - want)[~tied[:, None].repeat(5, 1)].max() <= 1e-5
    xt = torch.as_tensor(np.clip(x, xp[:, 0], xp[:, -1]).T.copy(), dtype=torch.float32)
    count = torch.searchsorted(qm.flat.view(5, -1)[:, 1:38].contiguous(), xt, right=True)
    assert torch.equal(qm.count(xt), count.clamp(max=qm.size - 1))


def test_affine_backends_agree():
    rng = np.random.default_rng(0)
    w, bias = rng.standard_normal((300, 70)), rng.standard_normal(70)
    x = torch.as_tensor(rng.standard_normal((50, 300)), dtype=torch.float32)
    fast = Affine(w, bias)
    plain = Affine(w, bias)
    plain.packed = None
    assert torch.allclose(fast(x), plain(x), atol=1e-4)
    assert torch.allclose(fast(x), torch.as_tensor(x.double().numpy() @ w + bias, dtype=torch.float32), atol=1e-4)
