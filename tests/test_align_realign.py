"""ReAlign properties (spec alignment-methods 1.6, Props B.16-B.19) and fidelity to a direct 4-pass run."""

from __future__ import annotations

import numpy as np
import pytest

from modgap.align import make
from test_align_data import gapped, unit

X = gapped(3000, seed=1, modality="image")
Y = gapped(2500, seed=2, modality="text")


def reference_four_pass(x: np.ndarray, y: np.ndarray, eps: float = 1e-10) -> tuple[np.ndarray, dict]:
    """Direct, non-chunked re-implementation of the authors' four passes (float64)."""
    x, y = unit(x.astype(np.float64)), unit(y.astype(np.float64))
    mu_x, mu_y = x.mean(0), y.mean(0)
    t_x, t_y = np.mean(np.sum((x - mu_x) ** 2, 1)), np.mean(np.sum((y - mu_y) ** 2, 1))
    s = np.sqrt(t_x / (t_y + eps))
    p = unit((y - mu_y) * s + mu_x)
    mu_p = p.mean(0)
    return unit(p - mu_p + mu_x), {"mu_x": mu_x, "mu_y": mu_y, "scale": s, "trace_x": t_x, "trace_y": t_y, "mu_p": mu_p}


def test_matches_direct_four_pass_to_1e12():
    model = make("realign", {"chunk_rows": 700}).fit(X, Y)
    ref, stats = reference_four_pass(X, Y)
    out = np.concatenate(
        [
            model._transform_raw_f64(b.astype(np.float64), np.sum(b.astype(np.float64) ** 2, 1), model.state_)
            for b in np.array_split(Y, 3)
        ]
    )
    assert np.abs(out - ref).max() < 1e-12
    for key, val in stats.items():
        assert np.allclose(model.state_[key], val, rtol=0, atol=1e-12), key
    assert np.abs(model.transform(Y) - ref).max() < 1e-6  # float32 output


def test_anchor_mean_equals_image_mean():  # B.16
    st = make("realign").fit(X, Y).state_
    e_dot = unit(Y.astype(np.float64)) - st["mu_y"] + st["mu_x"]
    assert np.abs(e_dot.mean(0) - st["mu_x"]).max() < 1e-12


def test_trace_matched_and_spectrum_preserved():  # B.17
    st = make("realign").fit(X, Y).state_
    y = unit(Y.astype(np.float64))
    e_tilde = st["mu_x"] + st["scale"] * (y - st["mu_y"])
    energy = np.mean(np.sum((e_tilde - st["mu_x"]) ** 2, 1))
    assert energy == pytest.approx(st["trace_x"], rel=1e-9)
    assert st["trace_x"] == pytest.approx(1 - st["mu_x"] @ st["mu_x"], abs=1e-10)
    w_t, v_t = np.linalg.eigh(np.cov(e_tilde.T, bias=True))
    w_y, v_y = np.linalg.eigh(np.cov(y.T, bias=True))
    assert np.allclose(w_t / w_t.sum(), w_y / w_y.sum(), atol=1e-12)
    top = slice(-5, None)  # well-separated leading eigenvectors agree up to sign
    assert np.allclose(np.abs(np.sum(v_t[:, top] * v_y[:, top], 0)), 1, atol=1e-8)


def test_centroid_step_and_bound():  # B.18, B.19
    model = make("realign").fit(X, Y)
    st = model.state_
    e_prime = unit(st["mu_x"] + st["scale"] * (unit(Y.astype(np.float64)) - st["mu_y"]))
    assert np.abs((e_prime - st["mu_p"] + st["mu_x"]).mean(0) - st["mu_x"]).max() < 1e-12
    h = np.linalg.norm(st["mu_x"] - st["mu_p"])
    assert h < 1
    out = model.transform(Y).astype(np.float64)
    assert np.linalg.norm(out.mean(0) - st["mu_x"]) <= h
    assert np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-6)


def test_ablations_and_transductive():
    y = unit(Y.astype(np.float64))
    st = make("realign").fit(X, Y).state_
    anchor = make("realign_anchor").fit(X, Y).transform(Y)
    assert np.abs(anchor - unit(y - st["mu_y"] + st["mu_x"])).max() < 1e-6
    trace = make("realign_anchor_trace").fit(X, Y).transform(Y)
    assert np.abs(trace - unit(st["mu_x"] + st["scale"] * (y - st["mu_y"]))).max() < 1e-6
    held = gapped(800, seed=9)
    model = make("realign").fit(X, Y)
    trans = model.transform(held, transductive=True).astype(np.float64)
    induct = model.transform(held).astype(np.float64)
    # transductive recalibration closes the in-sample gap at least as well as reusing mu'
    assert np.linalg.norm(trans.mean(0) - st["mu_x"]) <= np.linalg.norm(induct.mean(0) - st["mu_x"]) + 1e-6


def test_float32_means_fidelity_mode_is_close():
    a = make("realign").fit(X, Y).transform(Y)
    b = make("realign", {"float32_means": True}).fit(X, Y).transform(Y)
    assert 0 < np.abs(a.astype(np.float64) - b).max() < 1e-5


def test_float32_accumulation_error_is_larger():
    from modgap.align.studies import running_mean_errors

    err = running_mean_errors(gapped(50_000, d=8, seed=3), chunk_rows=1000)
    assert err["float64"] < 1e-14 < err["float32"]
