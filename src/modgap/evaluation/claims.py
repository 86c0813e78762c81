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
from dataclasses import asdict
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from modgap.errors import ConfigError
from modgap.evaluation.claims_nulls import NullConfig, compute_nulls
from modgap.io import read_json, write_json_atomic, write_text_atomic
from modgap.provenance import environment

HOLDS, FAILS = "holds", "does not hold"
UNINFORMATIVE, UNMEASURABLE = "uninformative at this tier", "not measurable at this tier"
VERDICTS = (HOLDS, FAILS, UNINFORMATIVE, UNMEASURABLE)
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
    _check_nulls(claim, where)


NULL_THRESHOLDS = ("null_q99", "null_q01")


def _check_nulls(claim: Mapping[str, Any], where: str) -> None:
    null = claim.get("null_model")
    if not isinstance(null, Mapping) or not null.get("name"):
        raise ConfigError(f"{where}: every claim names its null (null_model: {{name: ..., key|measure: ...}})")
    threshold = claim["test"].get("threshold")
    if isinstance(threshold, str) and (threshold not in NULL_THRESHOLDS or "key" not in null):
        raise ConfigError(f"{where}.test.threshold: a number or one of {NULL_THRESHOLDS} with null_model.key")
    for control in claim.get("controls", []):
        if not control.get("name") or not ({"key", "measure"} & set(control)):
            raise ConfigError(f"{where}.controls: each needs a name and a key or measure")
    if claim.get("interval") not in (None, "bootstrap"):
        raise ConfigError(f"{where}.interval: only 'bootstrap' is known")
    if claim.get("interval") and not (isinstance(claim["measure"], Mapping) and "diff" in claim["measure"]):
        raise ConfigError(f"{where}.interval: a bootstrap interval needs a {{diff: [a, b]}} measure")
    for req in claim.get("requires", []):
        if req.get("op") not in (">=", "<=") or not {"key", "threshold", "why"} <= set(req):
            raise ConfigError(f"{where}.requires: each needs key, op (>= or <=), threshold and why")
        if req.get("verdict", "not measurable") not in ("not measurable", "uninformative"):
            raise ConfigError(f"{where}.requires.verdict: 'not measurable' (default) or 'uninformative'")


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
    enc: str,
    ds: str,
    *,
    gap: Mapping[str, Any] | None = None,
    encoder: Mapping[str, Any] | None = None,
    align: Mapping[str, Any] | None = None,
    evaluation: Mapping[str, Any] | None = None,
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
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        return float(spec)  # a constant (e.g. a chance level or the identity map's value)
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ConfigError(f"claim measure must be a key or a one-key mapping, got {spec!r}")
    ((kind, args),) = spec.items()
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
        return {
            k[len(head) : len(k) - len(tail)]: v
            for k, v in ns.items()
            if fnmatch.fnmatchcase(k, pattern) and "." not in k[len(head) : len(k) - len(tail)]
        }

    a, b = by_star(pattern_a), by_star(pattern_b)
    shared = sorted(set(a) & set(b))
    return min(a[s] - b[s] for s in shared) if shared else None


# ---------------------------------------------------------------------------------------------
# verdicts


def _passes(test: Mapping[str, Any], value: float, threshold: float | None, paper: Any) -> bool:
    if test["op"] == ">":
        return value > threshold  # type: ignore[operator]
    if test["op"] == "<":
        return value < threshold  # type: ignore[operator]
    paper_f = float(paper)
    tolerance = test.get("tolerance", test.get("rel_tolerance", 0.0) * abs(paper_f))
    return abs(value - paper_f) <= tolerance


def null_point(null: Mapping[str, Any] | None, ns: Mapping[str, float]) -> float | None:
    """The statistic under a null: its ``measure`` (a point), else the median of its seeded draws."""
    if not null:
        return None
    if "measure" in null:
        return measure(null["measure"], ns)
    if "key" in null:
        return ns.get(f"{null['key']}.q50", ns.get(null["key"]))
    return None


def resolve_threshold(claim: Mapping[str, Any], ns: Mapping[str, float]) -> tuple[float | None, str]:
    """A fixed threshold, or ``null_q99``/``null_q01``: the null's 99th/1st percentile (the extreme in
    the direction of the test), so that ours must lie beyond 99 % of the null's draws."""
    test = claim["test"]
    if test["op"] == "within":
        return None, ""
    t = test["threshold"]
    if isinstance(t, int | float):
        return float(t), ""
    key = f"{claim['null_model']['key']}.{t.removeprefix('null_')}"
    return ns.get(key), key


def _outside(
    value: float, threshold: float, ns: Mapping[str, float], claim: Mapping[str, Any], noise: float | None
) -> str | None:
    """Why the claim is inside its noise (None when it is resolved): the suite's CI half-widths, or a
    bootstrap interval of the measured difference over the diagnostic pairs."""
    if noise is not None and abs(value - threshold) < noise:
        return f"the difference {value:+.3g} is inside the suite's 95 % sampling noise (±{noise:.3g})"
    lo_hi = interval(claim, ns)
    if lo_hi is not None and lo_hi[0] <= threshold <= lo_hi[1]:
        return (
            f"{value:+.3g}: the 95 % paired-bootstrap interval [{lo_hi[0]:+.3g}, {lo_hi[1]:+.3g}] over the "
            f"diagnostic pairs contains {threshold:g}"
        )
    return None


def interval(claim: Mapping[str, Any], ns: Mapping[str, float]) -> tuple[float, float] | None:
    key = interval_key(claim)
    if key is None or f"{key}.lo" not in ns:
        return None
    return ns[f"{key}.lo"], ns[f"{key}.hi"]


def interval_key(claim: Mapping[str, Any]) -> str | None:
    """``interval: bootstrap`` on a {diff: [a, b]} measure -> the bootstrap keys ``boot.<a>-<b>``."""
    if claim.get("interval") != "bootstrap":
        return None
    a, b = claim["measure"]["diff"]
    return f"boot.{a}-{b}"


def _unmet(claim: Mapping[str, Any], ns: Mapping[str, float]) -> tuple[str, str] | None:
    """(verdict, reason) of the first unmet precondition (regime, a baseline's parse rate...), stated
    with its value; not measurable unless the requirement names another verdict."""
    for req in claim.get("requires", []):
        value = ns.get(req["key"])
        verdict = UNINFORMATIVE if req.get("verdict") == "uninformative" else UNMEASURABLE
        if value is None:
            return UNMEASURABLE, f"{req['why']}: {req['key']} not reported"
        ok = value >= req["threshold"] if req["op"] == ">=" else value <= req["threshold"]
        if not ok:
            return verdict, f"{req['why']}: {req['key']} = {value:.3g} (needs {req['op']} {req['threshold']:g})"
    return None


def judge(
    claim: Mapping[str, Any],
    value: float | None,
    tier: str,
    noise: float | None = None,
    ns: Mapping[str, float] | None = None,
) -> tuple[str, str]:
    """(verdict, reason) of one claim given our measured value and the namespace with its nulls.

    Order: missing or wrong tier -> not measurable; unmet precondition -> not measurable; inside the
    noise -> not measurable; fails its test -> does not hold; holds by construction, or its null
    (or a control) passes the same test -> uninformative; null declared but not computed -> not
    measurable; else holds."""
    ns = ns or {}
    if value is None:
        return UNMEASURABLE, "no measurement at this tier (the compared method, regime or statistic was not run)"
    if claim["scope"] == "value" and tier != "paper":
        return UNMEASURABLE, "an absolute value of the paper's encoder; this tier measures a different encoder"
    if (unmet := _unmet(claim, ns)) is not None:
        return unmet
    threshold, threshold_key = resolve_threshold(claim, ns)
    if threshold_key and threshold is None:
        return UNMEASURABLE, f"the null that sets the threshold ({threshold_key}) was not computed"
    if threshold is not None and (inside := _outside(value, threshold, ns, claim, noise)) is not None:
        return UNMEASURABLE, inside
    if not _passes(claim["test"], value, threshold, claim.get("paper_value")):
        return FAILS, ""
    if claim.get("by_construction"):
        return UNINFORMATIVE, f"holds by construction: {claim['by_construction']}"
    null = claim.get("null_model") or {}
    controls = claim.get("controls", [])
    # A null that sets the threshold cannot pass it (its median is inside its own 99 %); controls can.
    checks = [] if threshold_key else [null]
    for c in [*checks, *controls]:
        point = null_point(c, ns)
        if point is not None and _passes(claim["test"], point, threshold, claim.get("paper_value")):
            return UNINFORMATIVE, f"passes under its null too ({c.get('name', 'null')}: {point:.4g})"
    missing = [
        c.get("name", "null") for c in [null, *controls] if ("key" in c or "measure" in c) and null_point(c, ns) is None
    ]
    if missing:
        return UNMEASURABLE, f"null not computed ({'; '.join(missing)})"
    return HOLDS, ""


def _noise(keys: Sequence[str] | None, ns: Mapping[str, float]) -> float | None:
    """Root-sum-square of the listed CI half-widths (independent errors; conservative for paired items)."""
    if not keys or any(k not in ns for k in keys):
        return None
    return math.sqrt(sum(ns[k] ** 2 for k in keys))


def describe_test(claim: Mapping[str, Any], ns: Mapping[str, float] | None = None) -> str:
    test = claim["test"]
    if test["op"] == "within":
        if "tolerance" in test:
            return f"|ours − paper| ≤ {test['tolerance']:g}"
        return f"|ours − paper| ≤ {test['rel_tolerance']:g}·|paper|"
    t = test["threshold"]
    if isinstance(t, int | float):
        return f"ours {test['op']} {t:g}"
    value, _ = resolve_threshold(claim, ns or {})
    pct = "99th" if t == "null_q99" else "1st"
    return f"ours {test['op']} null's {pct} pct" + (f" ({value:.4g})" if value is not None else "")


def sweep_rows(claim: Mapping[str, Any], ns: Mapping[str, float], tier: str) -> list[dict[str, Any]]:
    """The claim re-judged at each value of a baseline's free parameter (``sweep: {prefix, values}``):
    keys ``<values>.<v>.<key>`` replace ``<key>`` (e.g. sweep.c3.0.3.align.c3.Phi for align.c3.Phi)."""
    spec = claim.get("sweep")
    if not spec:
        return []
    root = spec["values"] + "."
    found = sorted(
        {k[len(root) :].split(".boot.")[0] for k in ns if k.startswith(root) and ".boot." in k}, key=_as_float
    )
    rows = []
    for v in found:
        sub = dict(ns)
        sub.update({k[len(f"{root}{v}.") :]: val for k, val in ns.items() if k.startswith(f"{root}{v}.")})
        point = sub.get(f"{interval_key(claim)}.point") if interval_key(claim) else None
        value = measure(claim["measure"], sub) if point is None else point
        verdict, _ = judge(claim, value, tier, None, sub)
        rows.append(
            {
                "param": spec["param"],
                "value": _as_float(v),
                "measured": value,
                "interval": interval(claim, sub),
                "verdict": verdict,
            }
        )
    return rows


def _as_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.inf


def evaluate_claims(
    ns: Mapping[str, float], tier: str, claims: Sequence[Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    out = []
    for claim in claims if claims is not None else load_claims():
        value = measure(claim["measure"], ns)
        noise = _noise(claim.get("noise"), ns)
        verdict, reason = judge(claim, value, tier, noise, ns)
        null = claim.get("null_model") or {}
        out.append(
            {
                "id": claim["id"],
                "source": claim["source"],
                "statement": claim["statement"],
                "scope": claim["scope"],
                "measured": value,
                "paper_value": claim.get("paper_value"),
                "test": describe_test(claim, ns),
                "verdict": verdict,
                "reason": reason,
                "tier": tier,
                "noise": noise,
                "null": {
                    "name": null.get("name"),
                    "value": null_point(null, ns),
                    "q01": ns.get(f"{null.get('key')}.q01"),
                    "q99": ns.get(f"{null.get('key')}.q99"),
                },
                "controls": [{"name": c["name"], "value": null_point(c, ns)} for c in claim.get("controls", [])],
                "interval": interval(claim, ns),
                "sweep": sweep_rows(claim, ns, tier),
                "evidence": {k: ns.get(k) for k in claim.get("evidence", [])},
            }
        )
    return out


def tally(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts = Counter(r["verdict"] for r in rows)
    return {v: counts.get(v, 0) for v in VERDICTS}


def tally_line(counts: Mapping[str, int]) -> str:
    """The one-line tally README quotes: holds / does not hold / uninformative / not measurable."""
    return (
        f"{counts.get(HOLDS, 0)} hold, {counts.get(FAILS, 0)} do not hold, "
        f"{counts.get(UNINFORMATIVE, 0)} uninformative (the null passes too), "
        f"{counts.get(UNMEASURABLE, 0)} not measurable (noise, regime, baseline or tier)"
    )


def write_claims_report(
    runs: Sequence[Mapping[str, str]],
    *,
    tier: str,
    gap: str | os.PathLike[str],
    encoder: str | os.PathLike[str] | None,
    align_metrics_root: str | os.PathLike[str],
    eval_metrics: str | os.PathLike[str] | None,
    markdown_out: str | os.PathLike[str],
    metrics_out: str | os.PathLike[str],
    embeddings_root: str | os.PathLike[str] | None = None,
    align_root: str | os.PathLike[str] | None = None,
    gap_root: str | os.PathLike[str] | None = None,
    null_config: NullConfig | None = None,
) -> dict[str, int]:
    """Judge every claim of every run; with ``embeddings_root`` (and the align/gap roots) the nulls,
    bootstrap intervals and the C3 sweep are computed from the embeddings first."""
    gap_metrics = read_json(gap)
    encoder_metrics = read_json(encoder) if encoder else None
    eval_data = read_json(eval_metrics) if eval_metrics else None
    cfg = null_config or NullConfig()
    results: dict[str, Any] = {"tier": tier, "runs": {}, "counts": {}, "nulls": {}, "null_config": asdict(cfg)}
    for run in runs:
        enc, ds = run["encoder"], run["dataset"]
        align_path = Path(align_metrics_root) / enc / f"{ds}.json"
        align = read_json(align_path) if align_path.is_file() else None
        ns = measurements(enc, ds, gap=gap_metrics, encoder=encoder_metrics, align=align, evaluation=eval_data)
        nulls: dict[str, float] = {}
        if embeddings_root is not None:
            nulls = compute_nulls(
                enc,
                ds,
                load_claims(),
                embeddings_root=Path(embeddings_root),
                align_root=Path(align_root or "results/align"),
                gap_root=Path(gap_root or "results/gap"),
                cfg=cfg,
            )
        ns.update({k: v for k, v in nulls.items() if math.isfinite(v)})
        rows = evaluate_claims(ns, tier)
        results["runs"][f"{enc}/{ds}"] = rows
        results["counts"][f"{enc}/{ds}"] = tally(rows)
        results["nulls"][f"{enc}/{ds}"] = nulls
    total = {v: sum(c[v] for c in results["counts"].values()) for v in VERDICTS}
    results["tally"] = {"counts": total, "line": tally_line(total)}
    results["environment"] = environment()  # lock hash and library versions (modgap.provenance)
    write_json_atomic(metrics_out, results)
    write_text_atomic(markdown_out, render_markdown(results))
    return total


def _environment_lines(env: Mapping[str, Any] | None) -> list[str]:
    """Which locked environment produced these numbers (`modgap workflow verify` compares them)."""
    if not env:
        return []
    versions = env.get("versions", {})
    libs = ", ".join(f"{k} {versions[k]}" for k in ("torch", "numpy", "open_clip_torch", "transformers")
                     if versions.get(k))  # fmt: skip
    lock = env.get("lock_sha256") or "none (not installed from requirements/lock.txt)"
    return ["", f"Environment: lock sha256 `{lock}`; {libs}; Python {versions.get('python')} on {env.get('platform')}."]


def render_markdown(results: Mapping[str, Any]) -> str:
    counts_all = results.get("tally", {}).get("counts") or {
        v: sum(c.get(v, 0) for c in results["counts"].values()) for v in VERDICTS
    }
    lines = [
        "# Claims report",
        "",
        "Each quantitative claim of ReAlign/ReVision ([RA], arXiv 2602.07026) and AnisoAlign ([AA], arXiv "
        "2605.07825), our measurement, the paper's number, the test, the statistic under the claim's null and "
        "the verdict. Generated by `modgap eval claims` from `src/modgap/evaluation/claims.yaml`; do not edit "
        "by hand.",
        "",
        f"Tier: **{results['tier']}**. Structural claims (orderings, inequalities) are judged at every tier; "
        "claims about an absolute value of the paper's LLM2CLIP features only at the paper tier. MLLM averages "
        "are fractions (0.5 = 50 %) over our held-out mini-suite, not the papers' 11 benchmarks.",
        "",
        "Verdicts: **holds** (passes its test, beyond its null and outside the noise); **does not hold**; "
        "**uninformative at this tier** (the null, a control or the construction passes the same test); "
        "**not measurable at this tier** (inside the noise interval, outside the regime, a baseline that does not "
        "parse, a null not computed, or an absolute value of another encoder). Orderings of alignment methods "
        "carry a 95 % paired-bootstrap interval of the difference over the diagnostic pairs.",
        "",
        f"<!-- claims-tally -->**Tally: {tally_line(counts_all)}.**<!-- /claims-tally -->",
    ]
    lines += _params_lines(results)
    lines += _environment_lines(results.get("environment"))
    for run, rows in results["runs"].items():
        counts = results["counts"][run]
        lines += [
            "",
            f"## {run}",
            "",
            tally_line(counts),
            "",
            "| claim | source | ours | paper | test | null (its value) | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            verdict = r["verdict"] + (f" ({r['reason']})" if r["reason"] else "")
            ours = _fmt(r["measured"]) + (
                f" [{r['interval'][0]:+.3g}, {r['interval'][1]:+.3g}]" if r.get("interval") else ""
            )
            lines.append(
                f"| {r['statement']} | {r['source']} | {ours} | {_fmt(r['paper_value'])} "
                f"| {r['test']} | {_null_cell(r)} | {verdict} |"
            )
        lines += _sweep_lines(rows)
    return "\n".join(lines) + "\n"


def _null_cell(row: Mapping[str, Any]) -> str:
    null = row.get("null") or {}
    if not null.get("name"):
        return "—"
    parts = [f"{null['name']}: {_fmt(null.get('value'))}"]
    if null.get("q99") is not None:
        parts[0] += f" (1–99 %: {_fmt(null.get('q01'))}–{_fmt(null['q99'])})"
    parts += [f"{c['name']}: {_fmt(c['value'])}" for c in row.get("controls", [])]
    return "; ".join(parts)


def _params_lines(results: Mapping[str, Any]) -> list[str]:
    cfg = results.get("null_config") or {}
    lines = [
        "",
        "Parameters: nulls with seed "
        f"{cfg.get('seed', '—')}, {cfg.get('draws', '—')} cheap draws, {cfg.get('shuffles', '—')} pair shuffles, "
        f"{cfg.get('boot', '—')} bootstrap resamples of the diagnostic pairs.",
    ]
    for run, nulls in (results.get("nulls") or {}).items():
        if "sweep.c3.calibrated_noise_norm" in nulls:
            d = nulls.get("sweep.c3.d", float("nan"))
            lines.append(
                f"{run}: C3 noise norm σ√d calibrated to the paper's Φ = 0.899: "
                f"{nulls['sweep.c3.calibrated_noise_norm']:.3g} (σ = "
                f"{nulls['sweep.c3.calibrated_noise_norm'] / math.sqrt(d):.3g} at d = {d:g})."
            )
        elif "sweep.c3.d" in nulls:
            lines.append(
                f"{run}: C3 noise norm cannot be calibrated to the paper's Φ = 0.899 on this data "
                "(no noise norm in [0, 3] reaches it); only the fixed sweep is reported."
            )
    return lines


def _sweep_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    swept = [r for r in rows if r.get("sweep")]
    if not swept:
        return []
    values = sorted({s["value"] for r in swept for s in r["sweep"]})
    param = swept[0]["sweep"][0]["param"]
    out = [
        "",
        f"Sensitivity to {param} (each cell: the difference, its interval and the verdict):",
        "",
        "| claim | " + " | ".join(f"{v:g}" for v in values) + " |",
        "|---|" + "---|" * len(values),
    ]
    for r in swept:
        cells = {s["value"]: s for s in r["sweep"]}
        out.append(f"| {r['statement']} | " + " | ".join(_sweep_cell(cells.get(v)) for v in values) + " |")
    return out


def _sweep_cell(cell: Mapping[str, Any] | None) -> str:
    if cell is None:
        return "—"
    ci = cell.get("interval")
    return f"{_fmt(cell['measured'])}" + (f" [{ci[0]:+.3g}, {ci[1]:+.3g}]" if ci else "") + f" {cell['verdict']}"


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"
