"""Claims: the registry is well formed, measures compute what they say, verdicts flip at the tolerance."""

from __future__ import annotations

import pytest

from modgap.errors import ConfigError
from modgap.evaluation.claims import (
    FAILS,
    HOLDS,
    UNMEASURABLE,
    evaluate_claims,
    flatten,
    judge,
    load_claims,
    measure,
    measurements,
    render_markdown,
)


def test_registry_loads_with_unique_ids_and_covers_both_papers():
    claims = load_claims()
    ids = [c["id"] for c in claims]
    assert len(ids) == len(set(ids)) and len(ids) >= 40
    assert any(c["source"].startswith("[RA]") for c in claims)
    assert any(c["source"].startswith("[AA]") for c in claims)
    assert {c["scope"] for c in claims} == {"structural", "value"}


def test_measure_kinds():
    ns = {"a": 3.0, "b": 2.0, "q.1": 0.5, "q.8": 0.6, "r.1": 0.1, "r.8": 0.5, "r.9": 0.0}
    assert measure("a", ns) == 3.0
    assert measure({"diff": ["a", "b"]}, ns) == 1.0
    assert measure({"ratio": ["a", "b"]}, ns) == 1.5
    assert measure({"rel_diff": ["a", "b"]}, ns) == 0.5
    assert measure({"min_diff": ["q.*", "r.*"]}, ns) == pytest.approx(0.1)  # over the shared q = 1, 8 only
    assert measure({"diff": ["a", "missing"]}, ns) is None
    with pytest.raises(ConfigError, match="measure kind"):
        measure({"sum": ["a", "b"]}, ns)


@pytest.mark.parametrize(
    ("value", "verdict"), [(0.86, HOLDS), (0.899, HOLDS), (0.801, HOLDS), (0.799, FAILS), (0.901, FAILS)]
)
def test_within_flips_at_the_tolerance(value, verdict):
    claim = {"scope": "value", "paper_value": 0.85, "test": {"op": "within", "tolerance": 0.05}}
    assert judge(claim, value, "paper")[0] == verdict


@pytest.mark.parametrize(("value", "verdict"), [(1e-9, HOLDS), (-1e-9, FAILS)])
def test_ordering_flips_at_the_threshold(value, verdict):
    claim = {"scope": "structural", "test": {"op": ">", "threshold": 0.0}}
    assert judge(claim, value, "embedded")[0] == verdict


def test_relative_tolerance():
    claim = {"scope": "value", "paper_value": 28.6, "test": {"op": "within", "rel_tolerance": 0.2}}
    assert judge(claim, 28.6 * 1.19, "paper")[0] == HOLDS
    assert judge(claim, 28.6 * 1.21, "paper")[0] == FAILS


def test_value_claims_are_not_judged_below_the_paper_tier():
    claim = {"scope": "value", "paper_value": 0.392, "test": {"op": "within", "tolerance": 0.03}}
    assert judge(claim, 0.392, "embedded")[0] == UNMEASURABLE
    assert judge({"scope": "structural", "test": {"op": "<", "threshold": 1}}, None, "paper")[0] == UNMEASURABLE


def test_namespace_keys_regimes_by_their_visual_inputs():
    evaluation = {
        "enc": {
            "ds": {
                "regimes": {
                    "whatever-name": {"stage1": "realign", "stage2": "image", "avg": 0.6},
                    "no-s1": {"stage1": None, "stage2": "image", "avg": 0.4},
                },
                "base_llm": {"avg": 0.3},
                "probes": {},
            }
        }
    }
    ns = measurements("enc", "ds", evaluation=evaluation)
    assert ns["eval.realign>image.avg"] == 0.6 and ns["eval.none>image.avg"] == 0.4
    assert ns["eval.base_llm.avg"] == 0.3


def test_mllm_claim_verdict_follows_the_measured_ordering():
    claims = [c for c in load_claims() if c["id"] == "ra-revision-beats-no-align"]

    def run(realign, identity, parse_rate=1.0):
        evaluation = {
            "e": {
                "d": {
                    "regimes": {
                        "r": {"stage1": "realign", "stage2": "image", "avg": realign, "parse_rate": parse_rate},
                        "i": {"stage1": "identity", "stage2": "image", "avg": identity, "parse_rate": 1.0},
                    }
                }
            }
        }
        return evaluate_claims(measurements("e", "d", evaluation=evaluation), "embedded", claims)[0]["verdict"]

    assert run(0.55, 0.50) == HOLDS
    assert run(0.50, 0.55) == FAILS
    # a compared model whose answers mostly do not parse cannot carry a verdict either way
    assert run(0.55, 0.50, parse_rate=0.6) == UNMEASURABLE
    missing = evaluate_claims({}, "embedded", claims)[0]
    assert missing["verdict"] == UNMEASURABLE and missing["measured"] is None


def test_flatten_keeps_numbers_only():
    assert flatten({"a": {"b": 1, "c": "text", "d": [1, 2], "e": True}}) == {"a.b": 1.0, "a.e": 1.0}


def test_markdown_lists_every_claim():
    rows = evaluate_claims({}, "embedded")
    text = render_markdown({"tier": "embedded", "runs": {"e/d": rows}, "counts": {"e/d": {UNMEASURABLE: len(rows)}}})
    assert text.count("\n| ") == len(rows) + 1  # header + one line per claim


def test_orderings_inside_the_sampling_noise_are_not_resolved():
    claim = {"scope": "structural", "test": {"op": ">", "threshold": 0.0}}
    assert judge(claim, 0.02, "embedded", noise=0.05)[0] == UNMEASURABLE
    assert "sampling noise" in judge(claim, 0.02, "embedded", noise=0.05)[1]
    assert judge(claim, 0.06, "embedded", noise=0.05)[0] == HOLDS
    assert judge(claim, -0.06, "embedded", noise=0.05)[0] == FAILS


def test_every_benchmark_ordering_claim_declares_its_noise():
    for claim in load_claims():
        keys = str(claim["measure"])
        if "eval." in keys:
            assert claim.get("noise"), claim["id"]
            row = {"stage1": "realign", "stage2": "image", "avg": 0.6, "avg_ci_halfwidth": 0.1}
            ns = measurements("e", "d", evaluation={"e": {"d": {"regimes": {"r": row}}}})
            assert ns["eval.realign>image.avg_ci_halfwidth"] == 0.1
