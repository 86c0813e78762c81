"""Nulls, bootstrap intervals and the four verdict kinds, from planted data.

Each planted set is built so that exactly one verdict is right: a paired residual that is
anisotropic only through the pairing (holds), an isotropic one (does not hold), one whose anisotropy
is marginal and survives shuffling (uninformative), and two alignment methods that differ by less
than the bootstrap interval (not measurable). The tests fail if the verdict logic is wrong.
"""

from __future__ import annotations

import numpy as np
import pytest

from modgap.evaluation.claims import (
    FAILS,
    HOLDS,
    UNINFORMATIVE,
    UNMEASURABLE,
    evaluate_claims,
    judge,
    load_claims,
    render_markdown,
    tally,
    tally_line,
)
from modgap.evaluation.claims_nulls import (
    NullConfig,
    bootstrap_orderings,
    c3_substitutes,
    c3_sweep,
    calibrate_c3,
    isotropic_residual_null,
    local_phantom,
    orderings_of,
    random_direction_angle_null,
    shuffled_pairs_null,
    sign_flip_gap_null,
    unit,
)

N, D, RANK = 400, 16, 8


def claim(cid: str) -> dict:
    return next(c for c in load_claims() if c["id"] == cid)


def iso(n: int = N, d: int = D, seed: int = 0) -> np.ndarray:
    return unit(np.random.default_rng(seed).standard_normal((n, d)))


def residual_ns(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The namespace the claims stage builds: our A_r beside its isotropic null and shuffled control."""
    from modgap.evaluation.claims_nulls import paired_stats

    ours = paired_stats(x, y, RANK, {})
    ns = {"gap.paired.A_r": ours["A_r"], "gap.paired.d_eff_over_d": ours["d_eff_over_d"]}
    ns.update(isotropic_residual_null(len(x), x.shape[1], RANK, 100, 0))
    ns.update(shuffled_pairs_null(x, y, RANK, {}, 10, 0))
    return ns


def verdict(cid: str, ns: dict[str, float]) -> str:
    return evaluate_claims(ns, "embedded", [claim(cid)])[0]["verdict"]


def rotate_plane(y: np.ndarray, angle: float) -> np.ndarray:
    """x = R y, R a rotation in the (e1, e2) plane: the residual x - y lives in that plane (paired
    anisotropy), while x keeps y's isotropic marginal (no marginal anisotropy)."""
    c, s = np.cos(angle), np.sin(angle)
    x = y.copy()
    x[:, 0], x[:, 1] = c * y[:, 0] - s * y[:, 1], s * y[:, 0] + c * y[:, 1]
    return x


def test_planted_paired_anisotropy_holds():
    y = iso()
    ns = residual_ns(rotate_plane(y, np.pi / 2), y)
    assert ns["gap.paired.A_r"] > ns["null.isotropic_residual.A_r.q99"]
    assert ns["null.shuffled_pairs.A_r.q50"] < ns["null.isotropic_residual.A_r.q99"]
    assert verdict("aa-residual-anisotropic", ns) == HOLDS


def test_planted_isotropic_residual_does_not_hold():
    y = iso()
    x = unit(y + 0.3 * np.random.default_rng(1).standard_normal(y.shape) / np.sqrt(D))
    assert verdict("aa-residual-anisotropic", residual_ns(x, y)) == FAILS


def test_planted_marginal_anisotropy_is_uninformative():
    """x = n(y + s e1): the residual is anisotropic, but so is x's marginal, so shuffled pairs pass too."""
    y = iso()
    s = np.random.default_rng(2).standard_normal(N)
    x = y.copy()
    x[:, 0] += 0.8 * s
    x = unit(x)
    ns = residual_ns(x, y)
    assert ns["gap.paired.A_r"] > ns["null.isotropic_residual.A_r.q99"]  # the fixed-threshold test passes
    row = evaluate_claims(ns, "embedded", [claim("aa-residual-anisotropic")])[0]
    assert row["verdict"] == UNINFORMATIVE and "pairs shuffled" in row["reason"]


def test_planted_ordering_inside_the_bootstrap_interval_is_not_measurable():
    """Two methods that differ only by independent noise of the same size: Phi's difference is inside
    its paired-bootstrap interval. A real difference (less noise) is resolved and holds."""
    x, y = iso(seed=3), iso(seed=4)
    rng = np.random.default_rng(5)
    noisy = {m: unit(y + 0.5 * rng.standard_normal(y.shape) / np.sqrt(D)) for m in ("realign", "c3")}
    cfg = NullConfig(boot=100, pairs=2000, knn_k=5)
    cl = claim("aa-semantics-realign-over-c3")
    order = orderings_of([cl])
    assert order == [("realign", "c3", "Phi")]

    def ns_for(subs: dict[str, np.ndarray]) -> dict[str, float]:
        boot = bootstrap_orderings(x, y, subs, order, cfg)
        phi = {m: float(np.mean(np.sum(y * z, 1))) for m, z in subs.items()}
        return {**boot, "align.realign.Phi": phi["realign"], "align.c3.Phi": phi["c3"]}

    row = evaluate_claims(ns_for(noisy), "embedded", [cl])[0]
    assert row["verdict"] == UNMEASURABLE and "paired-bootstrap interval" in row["reason"]
    lo, hi = row["interval"]
    assert lo < 0 < hi
    better = {**noisy, "realign": unit(y + 0.1 * rng.standard_normal(y.shape) / np.sqrt(D))}
    row = evaluate_claims(ns_for(better), "embedded", [cl])[0]
    assert row["verdict"] == HOLDS and row["interval"][0] > 0


def test_bootstrap_point_matches_the_diagnostics():
    from modgap.align.diagnostics import instance_consistency, modality_mixing, neighbourhood_consistency

    x, y = iso(seed=6), iso(seed=7)
    rng = np.random.default_rng(8)
    subs = {"a": unit(y + 0.3 * rng.standard_normal(y.shape)), "b": unit(y + 0.6 * rng.standard_normal(y.shape))}
    metrics = ["Phi", "Omega_20", "M_X", "M_Z", "mixing_rate", "delta_mu"]
    out = bootstrap_orderings(x, y, subs, [("a", "b", m) for m in metrics], NullConfig(boot=5, pairs=500))
    mix_a, mix_b = (modality_mixing(x, subs[m], 20, 20, 0) for m in "ab")
    expect = {
        "Phi": instance_consistency(y, subs["a"]) - instance_consistency(y, subs["b"]),
        "Omega_20": neighbourhood_consistency(y, subs["a"], 20) - neighbourhood_consistency(y, subs["b"], 20),
        "M_X": mix_a["M_X"] - mix_b["M_X"],
        "M_Z": mix_a["M_Z"] - mix_b["M_Z"],
        "mixing_rate": mix_a["mixing_rate"] - mix_b["mixing_rate"],
        "delta_mu": np.linalg.norm((subs["a"] - x).mean(0)) - np.linalg.norm((subs["b"] - x).mean(0)),
    }
    for m, value in expect.items():
        assert out[f"boot.align.a.{m}-align.b.{m}.point"] == pytest.approx(value, abs=1e-9), m

    # the C3 sweep's cache: reusing method "a" while "b" is replaced gives what a fresh call gives
    shared: dict = {}
    orders = [("a", "b", "Phi"), ("a", "b", "Psi")]
    bootstrap_orderings(x, y, subs, orders, NullConfig(boot=5, set_boot=3, pairs=500), shared)
    other = {**subs, "b": unit(y + 0.9 * rng.standard_normal(y.shape))}
    cached = bootstrap_orderings(x, y, other, orders, NullConfig(boot=5, set_boot=3, pairs=500), shared, fresh=("b",))
    assert cached == bootstrap_orderings(x, y, other, orders, NullConfig(boot=5, set_boot=3, pairs=500))


def test_isotropic_residual_null_reproduces_the_review_number():
    """An isotropic residual with n = 832, d = 256 gives A_r ≈ 2.39 (so a fixed A_r > 2 cannot fail)."""
    out = isotropic_residual_null(832, 256, 114, 20, 0)
    assert 2.3 < out["null.isotropic_residual.A_r.q50"] < 2.5
    assert out["null.isotropic_residual.A_r.q01"] > 2.0
    assert out["null.isotropic_residual.tr_V_over_U.q50"] == pytest.approx(142 / 114, rel=0.05)


def test_random_direction_is_nearly_orthogonal_in_high_dimension():
    out = random_direction_angle_null(142, 20_000, 0)
    assert out["null.random_direction.angle_gamma_v1.q01"] > 70  # P(< 60°) is ~1e-10
    ns = {"gap.frame.angle_gamma_v1": 87.3, **{k.replace("null.", "null.", 1): v for k, v in out.items()}}
    row = evaluate_claims(ns, "embedded", [claim("ra-v-direction-orthogonal-to-gamma")])[0]
    assert row["verdict"] == UNINFORMATIVE


def test_sign_flip_null_has_no_gap():
    x = iso(seed=9)
    z_same = unit(x + 0.5 * np.random.default_rng(10).standard_normal(x.shape))
    out = sign_flip_gap_null(x, z_same, 500, 0)
    assert 0.5 < out["null.sign_flip.delta_mu_over_floor.q50"] < 1.5


def test_c3_calibration_hits_the_target_phi():
    y = iso(n=300, d=64, seed=11)
    mu_x, mu_y = np.full(64, 0.05), y.mean(0)
    norm = calibrate_c3(y, mu_x, mu_y, 0.899, 0)
    phi = np.mean(np.sum(y * c3_substitutes(y, mu_x, mu_y, norm, 0), 1))
    assert phi == pytest.approx(0.899, abs=0.005)


def test_c3_calibration_out_of_reach_is_left_out_not_nan():
    """A shift so large that even noise-free C3 has Phi < 0.899: no calibrated norm, and no NaN written."""
    y = iso(n=200, d=32, seed=13)
    mu_y = y.mean(0)
    mu_x = mu_y + 3.0 * unit(np.random.default_rng(14).standard_normal((1, 32)))[0]
    assert np.isnan(calibrate_c3(y, mu_x, mu_y, 0.899, 0))
    out = c3_sweep(y, y, {}, mu_x, mu_y, [], NullConfig(boot=5, pairs=100))
    assert "sweep.c3.calibrated_noise_norm" not in out and all(np.isfinite(v) for v in out.values())


def test_local_phantom_formula_tracks_the_regime_and_is_judged_against_its_control():
    """Tight clusters (small eps²): Thm B.14 is accurate, loose ones are not. On spherical clusters the
    shape of Sigma barely matters, so the isotropic-Sigma control passes too: uninformative."""
    rng = np.random.default_rng(12)

    def clusters(scale: float) -> np.ndarray:
        centres = unit(rng.standard_normal((40, 16)))
        noise = scale * rng.standard_normal((240, 16)) * np.linspace(0.2, 2, 16)
        return unit(np.repeat(centres, 6, 0) + noise)

    tight = local_phantom(clusters(0.05), NullConfig(), k=5, anchors=40)
    loose = local_phantom(clusters(0.3), NullConfig(), k=5, anchors=40)
    assert tight["phantom.local.eps2"] < 0.1 < loose["phantom.local.eps2"]
    assert tight["phantom.local.rel_error_formula"] < 0.1 < loose["phantom.local.rel_error_formula"]
    assert verdict("ra-phantom-formula-local", tight) == UNINFORMATIVE
    row = evaluate_claims(loose, "embedded", [claim("ra-phantom-formula-local")])[0]
    assert row["verdict"] == UNMEASURABLE and "small-noise regime" in row["reason"]


# --- the verdict logic on hand-made namespaces ---------------------------------------------


GT = {
    "id": "t",
    "source": "s",
    "statement": "s",
    "scope": "structural",
    "measure": "m",
    "test": {"op": ">", "threshold": "null_q99"},
    "null_model": {"name": "iso", "key": "null.x"},
}


@pytest.mark.parametrize(("value", "expected"), [(3.0, HOLDS), (1.5, FAILS)])
def test_null_quantile_threshold(value, expected):
    ns = {"null.x.q50": 1.0, "null.x.q99": 2.0}
    assert judge(GT, value, "embedded", ns=ns)[0] == expected


def test_a_threshold_null_that_was_not_computed_blocks_the_verdict():
    assert judge(GT, 3.0, "embedded", ns={})[0] == UNMEASURABLE


def test_fixed_threshold_passed_by_the_null_is_uninformative():
    c = {**GT, "test": {"op": ">", "threshold": 0.5}}
    assert judge(c, 0.9, "embedded", ns={"null.x.q50": 0.95})[0] == UNINFORMATIVE
    assert judge(c, 0.9, "embedded", ns={"null.x.q50": 0.1})[0] == HOLDS


def test_by_construction_is_uninformative_but_a_failure_still_fails():
    c = {**GT, "test": {"op": "<", "threshold": 0.1}, "by_construction": "IEEE", "null_model": {"name": "none"}}
    assert judge(c, 0.01, "embedded")[0] == UNINFORMATIVE
    assert judge(c, 0.5, "embedded")[0] == FAILS


def test_requirements_gate_the_verdict():
    req = {"key": "rate", "op": ">=", "threshold": 0.9, "why": "parse rate"}
    c = {**GT, "test": {"op": ">", "threshold": 0.0}, "null_model": {"name": "none"}, "requires": [req]}
    assert judge(c, 1.0, "embedded", ns={"rate": 0.95})[0] == HOLDS
    verdict_, reason = judge(c, 1.0, "embedded", ns={"rate": 0.3})
    assert verdict_ == UNMEASURABLE and "0.3" in reason
    c["requires"] = [{**req, "verdict": "uninformative"}]
    assert judge(c, 1.0, "embedded", ns={"rate": 0.3})[0] == UNINFORMATIVE


def test_every_claim_names_its_null_and_every_alignment_ordering_has_an_interval():
    for c in load_claims():
        assert c["null_model"]["name"]
        if c["id"].startswith(
            (
                "aa-gap-order",
                "aa-coverage",
                "aa-semantics",
                "aa-neighbourhoods",
                "ra-js",
                "ra-mixing",
                "aa-relative",
                "aa-penetration",
                "ra-c3-flattens",
                "ra-neighbourhoods",
            )
        ):
            assert c.get("interval") == "bootstrap", c["id"]
    by_construction = {c["id"] for c in load_claims() if c.get("by_construction")}
    expected = {"ra-float64-precision", "ra-realign-closes-gap-in-sample", "ra-spectrum-exponent-preserved"}
    assert expected <= by_construction


def test_blind_baseline_claim_is_uninformative_when_chance_beats_the_baseline():
    """A base LLM that scores below chance (answers that do not parse) is beaten by a chance scorer."""
    ns = {
        "eval.realign>image.avg": 0.26,
        "eval.base_llm.avg": 0.09,
        "eval.realign>image.parse_rate": 1.0,
        "eval.base_llm.parse_rate": 1.0,
        "eval.realign>image.avg_ci_halfwidth": 0.02,
        "eval.base_llm.avg_ci_halfwidth": 0.01,
    }
    assert verdict("ra-trained-beats-blind", ns) == UNINFORMATIVE
    assert verdict("ra-trained-beats-blind", {**ns, "eval.base_llm.parse_rate": 0.3}) == UNMEASURABLE


def test_tally_and_markdown_show_all_four_kinds():
    rows = [{"verdict": v} for v in (HOLDS, FAILS, UNINFORMATIVE, UNMEASURABLE, HOLDS)]
    counts = tally(rows)
    assert counts == {HOLDS: 2, FAILS: 1, UNINFORMATIVE: 1, UNMEASURABLE: 1}
    line = tally_line(counts)
    assert line.startswith("2 hold, 1 do not hold, 1 uninformative")
    rows = evaluate_claims({}, "embedded")
    text = render_markdown(
        {"tier": "embedded", "runs": {"e/d": rows}, "counts": {"e/d": tally(rows)}, "tally": {"counts": tally(rows)}}
    )
    assert "<!-- claims-tally -->" in text and "null (its value)" in text


def test_sweep_rejudges_the_claim_at_each_parameter_value():
    """A C3 ordering that holds at small noise and is inside the interval at large noise: the sweep
    shows both verdicts, the headline verdict is the one at the configured C3."""
    cl = claim("aa-semantics-realign-over-c3")
    key = "boot.align.realign.Phi-align.c3.Phi"
    ns = {
        "align.realign.Phi": 0.93,
        "align.c3.Phi": 0.90,
        f"{key}.lo": 0.02,
        f"{key}.hi": 0.04,
        f"sweep.c3.0.3.{key}.lo": 0.02,
        f"sweep.c3.0.3.{key}.hi": 0.04,
        f"sweep.c3.0.3.{key}.point": 0.03,
        f"sweep.c3.2.{key}.lo": -0.01,
        f"sweep.c3.2.{key}.hi": 0.01,
        f"sweep.c3.2.{key}.point": 0.001,
    }
    row = evaluate_claims(ns, "embedded", [cl])[0]
    assert row["verdict"] == HOLDS
    assert [(s["value"], s["verdict"]) for s in row["sweep"]] == [(0.3, HOLDS), (2.0, UNMEASURABLE)]
    text = render_markdown({"tier": "embedded", "runs": {"e/d": [row]}, "counts": {"e/d": tally([row])}})
    assert "Sensitivity to C3 noise norm σ√d" in text
