"""The claims report: every quantitative claim of both papers (``claims.yaml``) → our measurement,
the paper's number, the test with its tolerance, and a verdict per encoder × dataset run.

Verdicts: ``holds``, ``does not hold``, or ``not measurable at this tier`` (the measurement is
missing — e.g. the MLLM regime a claim compares is not configured — or the claim is about an
absolute value of the paper's encoder and this is not the paper tier).
"""

from __future__ import annotations

import fnmatch
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from modgap.errors import ConfigError
from modgap.io import read_json, write_json_atomic, write_text_atomic

HOLDS, FAILS, UNMEASURABLE = "holds", "does not hold", "not measurable at this tier"
OPS = (">", "<", "within")


@cache
def load_claims() -> list[dict[str, Any]]:
    text = resources.files("modgap.evaluation").joinpath("claims.yaml").read_text(encoding="utf-8")
    claims = yaml.safe_load(text)["claims"]
    for claim in claims:
        check_claim(claim)
    return claims


def check_claim(claim: Mapping[str, Any]) -> None:
    where = f"claim {claim.get('id', '?')}"
    for key in ("id", "source", "statement", "scope", "measure", "test"):
        if key not in claim:
            raise ConfigError(f"{where}: missing key {key!r}")
    if not isinstance(claim.get("noise", []), list):
        raise ConfigError(f"{where}.noise: must be a list of CI half-width keys")
    if claim["scope"] not in ("structural", "value"):
        raise ConfigError(f"{where}.scope: must be 'structural' or 'value'")
    test = claim["test"]
    if test.get("op") not in OPS:
        raise ConfigError(f"{where}.test.op: must be one of {OPS}")
    if test["op"] == "within" and claim.get("paper_value") is None:
        raise ConfigError(f"{where}: a 'within' test needs paper_value")
    if test["op"] == "within" and not ({"tolerance", "rel_tolerance"} & set(test)):
        raise ConfigError(f"{where}.test: 'within' needs tolerance or rel_tolerance")
    if test["op"] != "within" and "threshold" not in test:
        raise ConfigError(f"{where}.test: {test['op']!r} needs threshold")


# ---------------------------------------------------------------------------------------------
# the measurement namespace


def flatten(obj: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested dicts as dotted keys (lists and text are skipped)."""
    out: dict[str, float] = {}
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}{key}."))
    elif isinstance(obj, bool) or (isinstance(obj, int | float) and obj is not None):
        out[prefix[:-1]] = float(obj)
    return out


def measurements(
    enc: str, ds: str, *, gap: Mapping[str, Any] | None = None, encoder: Mapping[str, Any] | None = None,
    align: Mapping[str, Any] | None = None, evaluation: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Every number one run produced, under the keys ``claims.yaml`` uses."""
    ns: dict[str, float] = {}
    if gap:
        ns.update(flatten(gap.get(enc, {}).get(ds, {}), "gap."))
        ns.update(flatten(gap.get("dynamics", {}).get(ds, {}), "gap.dynamics."))
    if encoder:
        ns.update(flatten(encoder.get(f"{enc}/{ds}", {}), "encoder."))
    if align:
        ns.update(flatten(align.get("methods", {}), "align."))
        ns.update(flatten(align.get("studies", {}), "align.studies."))
    run = (evaluation or {}).get(enc, {}).get(ds, {})
    for row in run.get("regimes", {}).values():
        ns.update(flatten(row, f"eval.{row.get('stage1') or 'none'}>{row.get('stage2')}."))
    if run.get("base_llm"):
        ns.update(flatten(run["base_llm"], "eval.base_llm."))
    ns.update(flatten(run.get("probes", {}), "eval.probe."))
    return {k: v for k, v in ns.items() if math.isfinite(v)}


def measure(spec: Any, ns: Mapping[str, float]) -> float | None:
    """Evaluate a claim's ``measure`` on the namespace; None when any input is missing."""
    if isinstance(spec, str):
        return ns.get(spec)
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ConfigError(f"claim measure must be a key or a one-key mapping, got {spec!r}")
    (kind, args), = spec.items()
    if kind == "min_diff":
        return _min_diff(args[0], args[1], ns)
    a, b = (measure(x, ns) for x in args)
    if a is None or b is None:
        return None
    if kind == "diff":
        return a - b
    if kind == "ratio":
        return a / b if b else None
    if kind == "rel_diff":
        return abs(a - b) / abs(b) if b else None
    raise ConfigError(f"claim measure kind {kind!r} is not diff, ratio, rel_diff or min_diff")


def _min_diff(pattern_a: str, pattern_b: str, ns: Mapping[str, float]) -> float | None:
    def by_star(pattern: str) -> dict[str, float]:
        head, tail = pattern.split("*")
        return {k[len(head): len(k) - len(tail)]: v for k, v in ns.items()
                if fnmatch.fnmatchcase(k, pattern) and "." not in k[len(head): len(k) - len(tail)]}

    a, b = by_star(pattern_a), by_star(pattern_b)
    shared = sorted(set(a) & set(b))
    return min(a[s] - b[s] for s in shared) if shared else None


# ---------------------------------------------------------------------------------------------
# verdicts


def judge(claim: Mapping[str, Any], value: float | None, tier: str, noise: float | None = None) -> tuple[str, str]:
    """(verdict, reason) of one claim given our measured value. ``noise``: the 95 % sampling noise of
    the measurement (benchmark claims); an ordering inside it is not resolved by this tier's suite."""
    if value is None:
        return UNMEASURABLE, "no measurement at this tier (the compared method, regime or statistic was not run)"
    if claim["scope"] == "value" and tier != "paper":
        return UNMEASURABLE, "an absolute value of the paper's encoder; this tier measures a different encoder"
    test = claim["test"]
    if noise is not None and test["op"] != "within" and abs(value - test["threshold"]) < noise:
        return UNMEASURABLE, f"the difference {value:+.3g} is inside the suite's 95 % sampling noise (±{noise:.3g})"
    if test["op"] == ">":
        ok = value > test["threshold"]
    elif test["op"] == "<":
        ok = value < test["threshold"]
    else:
        paper = float(claim["paper_value"])
        tolerance = test.get("tolerance", test.get("rel_tolerance", 0.0) * abs(paper))
        ok = abs(value - paper) <= tolerance
    return (HOLDS if ok else FAILS), ""


def _noise(keys: Sequence[str] | None, ns: Mapping[str, float]) -> float | None:
    """Root-sum-square of the listed CI half-widths (independent errors; conservative for paired items)."""
    if not keys or any(k not in ns for k in keys):
        return None
    return math.sqrt(sum(ns[k] ** 2 for k in keys))


def describe_test(claim: Mapping[str, Any]) -> str:
    test = claim["test"]
    if test["op"] == "within":
        if "tolerance" in test:
            return f"|ours − paper| ≤ {test['tolerance']:g}"
        return f"|ours − paper| ≤ {test['rel_tolerance']:g}·|paper|"
    return f"ours {test['op']} {test['threshold']:g}"


def evaluate_claims(ns: Mapping[str, float], tier: str,
                    claims: Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    out = []
    for claim in claims if claims is not None else load_claims():
        value = measure(claim["measure"], ns)
        noise = _noise(claim.get("noise"), ns)
        verdict, reason = judge(claim, value, tier, noise)
        out.append({
            "id": claim["id"], "source": claim["source"], "statement": claim["statement"], "scope": claim["scope"],
            "measured": value, "paper_value": claim.get("paper_value"), "test": describe_test(claim),
            "verdict": verdict, "reason": reason, "tier": tier, "noise": noise,
            "evidence": {k: ns.get(k) for k in claim.get("evidence", [])},
        })
    return out


def write_claims_report(
    runs: Sequence[Mapping[str, str]], *, tier: str, gap: str | os.PathLike[str],
    encoder: str | os.PathLike[str] | None, align_metrics_root: str | os.PathLike[str],
    eval_metrics: str | os.PathLike[str] | None, markdown_out: str | os.PathLike[str],
    metrics_out: str | os.PathLike[str],
) -> dict[str, int]:
    gap_metrics = read_json(gap)
    encoder_metrics = read_json(encoder) if encoder else None
    eval_data = read_json(eval_metrics) if eval_metrics else None
    results: dict[str, Any] = {"tier": tier, "runs": {}, "counts": {}}
    for run in runs:
        enc, ds = run["encoder"], run["dataset"]
        align_path = Path(align_metrics_root) / enc / f"{ds}.json"
        align = read_json(align_path) if align_path.is_file() else None
        ns = measurements(enc, ds, gap=gap_metrics, encoder=encoder_metrics, align=align, evaluation=eval_data)
        rows = evaluate_claims(ns, tier)
        results["runs"][f"{enc}/{ds}"] = rows
        results["counts"][f"{enc}/{ds}"] = dict(Counter(r["verdict"] for r in rows))
    write_json_atomic(metrics_out, results)
    write_text_atomic(markdown_out, render_markdown(results))
    return {k: sum(c.get(k, 0) for c in results["counts"].values()) for k in (HOLDS, FAILS, UNMEASURABLE)}


def render_markdown(results: Mapping[str, Any]) -> str:
    lines = [
        "# Claims report",
        "",
        "Each quantitative claim of ReAlign/ReVision ([RA], arXiv 2602.07026) and AnisoAlign ([AA], arXiv "
        "2605.07825), our measurement, the paper's number, the test and the verdict. Generated by "
        "`modgap eval claims` from `src/modgap/evaluation/claims.yaml`; do not edit by hand.",
        "",
        f"Tier: **{results['tier']}**. Structural claims (orderings, inequalities) are judged at every tier; "
        "claims about an absolute value of the paper's LLM2CLIP features only at the paper tier. MLLM averages "
        "are fractions (0.5 = 50 %) over our held-out mini-suite, not the papers' 11 benchmarks.",
    ]
    for run, rows in results["runs"].items():
        counts = results["counts"][run]
        lines += ["", f"## {run}", "",
                  ", ".join(f"{counts.get(v, 0)} {v}" for v in (HOLDS, FAILS, UNMEASURABLE)), "",
                  "| claim | source | ours | paper | test | verdict |", "|---|---|---|---|---|---|"]
        for r in rows:
            verdict = r["verdict"] + (f" ({r['reason']})" if r["reason"] else "")
            lines.append(f"| {r['statement']} | {r['source']} | {_fmt(r['measured'])} | {_fmt(r['paper_value'])} "
                         f"| {r['test']} | {verdict} |")
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"
