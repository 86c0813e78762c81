"""Aggregate evaluation scores into ``results/metrics/eval.json``, the regime table of the
scaled-down protocol ([spec] revision-mllm §11.5), the Stage-1 probe table with each method's
embedding geometry beside it, and the papers' MLLM tables with their printed numbers as a
reference column (``paper_tables.yaml``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from modgap.errors import ModgapError
from modgap.evaluation.answers import mcnemar
from modgap.evaluation.io import read_jsonl
from modgap.evaluation.runner import CONDITIONS
from modgap.evaluation.score import parse_rate
from modgap.io import read_json, write_json_atomic
from modgap.provenance import environment
from modgap.report.tables import write_table

GEOMETRY = ("delta_mu", "delta_mu_in_sample", "M_Z", "M_X", "Phi", "Psi", "Omega_20", "A_r")
PAPER_COLUMNS_SHOWN = ("POPE", "Avg")


@cache
def paper_tables() -> dict[str, Any]:
    text = resources.files("modgap.evaluation").joinpath("paper_tables.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def load_run_scores(eval_root: str | os.PathLike[str], enc: str, ds: str, llm: str,
                    models: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """{model: {condition: scores}} for the models that have any score file."""
    root = Path(eval_root) / enc / ds / llm
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for model in models:
        for condition in CONDITIONS:
            path = root / model / f"{condition}.json"
            if path.is_file():
                out.setdefault(model, {})[condition] = read_json(path)["scores"]
    return out


def regime_summary(scores: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Headline numbers of one model: image-condition scores, each control's Avg and the B2 gap."""
    image = scores.get("image", {})
    row: dict[str, Any] = {
        "caption_cider_d": _get(image, "caption", "cider_d"),
        "caption_bleu4": _get(image, "caption", "bleu4"),
        "caption_mention_recall": _get(image, "caption", "mention_recall"),
        "pope_accuracy": _get(image, "pope", "accuracy"),
        "pope_f1": _get(image, "pope", "f1"),
        "choice_accuracy": _get(image, "choice", "accuracy"),
        "choice_circular_accuracy": _get(image, "choice", "circular_accuracy"),
        "avg": image.get("avg"),
        "parse_rate": image.get("parse_rate"),
    }
    for strategy in ("random", "popular", "adversarial"):
        row[f"pope_{strategy}_accuracy"] = _get(image, "pope", strategy, "accuracy")
        row[f"pope_{strategy}_yes_ratio"] = _get(image, "pope", strategy, "yes_ratio")
    for condition, control in scores.items():
        if condition != "image":
            row[f"{condition}_avg"] = control.get("avg")
            row[f"{condition}_parse_rate"] = control.get("parse_rate")
            if row["avg"] is not None and control.get("avg") is not None:
                row[f"{condition}_gap"] = row["avg"] - control["avg"]
    return row


def avg_interval(records: Sequence[Mapping[str, Any]], *, resamples: int = 1000, seed: int = 0) -> dict[str, float]:
    """95 % bootstrap interval of the benchmark average, resampling images (an image's POPE questions
    and MC rotations move together, and an image drawn twice counts twice), and its half-width: the
    noise a claim's difference must exceed."""
    per_image = _per_image(records)
    if not per_image:
        return {}
    images = list(per_image.values())
    rng = np.random.default_rng(seed)
    draws = [_average([images[k] for k in rng.integers(0, len(images), len(images))]) for _ in range(resamples)]
    low, high = (float(np.nanquantile(draws, q)) for q in (0.025, 0.975))
    return {"avg_ci_low": low, "avg_ci_high": high, "avg_ci_halfwidth": (high - low) / 2}


def _per_image(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per image: for each POPE strategy the correctness of its balanced set (the image's positive and
    that strategy's negative), and whether every MC rotation was right (circular)."""
    units = _units(records)
    out: dict[str, dict[str, Any]] = {}
    by_uid = {r["uid"]: r for r in records}
    for unit, outcomes in units.items():
        for key, correct in outcomes.items():
            image = by_uid[key]["image_id"] if unit.startswith("pope_") else key
            entry = out.setdefault(image, {"pope": {}, "choice": None})
            if unit == "choice":
                entry["choice"] = correct
            else:
                entry["pope"].setdefault(unit, []).append(correct)
    return out


def _average(images: Sequence[Mapping[str, Any]]) -> float:
    """Mean of POPE accuracy (averaged over strategies) and circular MC accuracy over these images."""
    strategies = sorted({s for img in images for s in img["pope"]})
    parts = []
    if strategies:
        parts.append(np.mean([np.mean([c for img in images for c in img["pope"].get(s, [])]) for s in strategies]))
    circular = [img["choice"] for img in images if img["choice"] is not None]
    if circular:
        parts.append(np.mean(circular))
    return float(np.mean(parts)) if parts else float("nan")


def paired_tests(eval_root: str | os.PathLike[str], enc: str, ds: str, llm: str, model: str,
                 reference: str) -> dict[str, Any]:
    """Exact McNemar tests of ``model`` against ``reference`` on the units each metric scores: per POPE
    strategy its balanced set (the shared positives plus that strategy's negatives), and per image the
    circular multiple-choice outcome. Pooling all POPE questions would weigh negatives 3:1 and test a
    different quantity than the accuracy reported."""
    root = Path(eval_root) / enc / ds / llm
    a = _units(read_jsonl(root / model / "image.jsonl"))
    b = _units(read_jsonl(root / reference / "image.jsonl"))
    out: dict[str, Any] = {"reference": reference}
    for unit in sorted(set(a) & set(b)):
        keys = sorted(set(a[unit]) & set(b[unit]))
        if keys:
            out[unit] = mcnemar([a[unit][k] for k in keys], [b[unit][k] for k in keys])
    return out


def _units(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, bool]]:
    """{unit: {item key: correct}}: ``pope_<strategy>`` (positives + that strategy's negatives) and
    ``choice`` (one circular outcome per image)."""
    pope = [r for r in records if r["task"] == "pope"]
    out: dict[str, dict[str, bool]] = {}
    for strategy in sorted({r["variant"] for r in pope} - {"positive"}):
        out[f"pope_{strategy}"] = {r["uid"]: bool(r["correct"]) for r in pope
                                   if r["variant"] in ("positive", strategy)}
    groups: dict[str, bool] = {}
    for r in records:
        if r["task"] == "choice":
            groups[r["group"]] = groups.get(r["group"], True) and bool(r["correct"])
    if groups:
        out["choice"] = groups
    return out


def find_regime(regimes: Mapping[str, Mapping[str, Any]], stage1: str | None, stage2: str) -> str | None:
    for name, spec in regimes.items():
        if spec.get("stage1") == stage1 and spec.get("stage2") == stage2:
            return name
    return None


def write_eval_report(
    runs: Sequence[Mapping[str, str]],
    regimes: Mapping[str, Mapping[str, Any]],
    llm: str,
    *,
    eval_root: str | os.PathLike[str],
    align_metrics_root: str | os.PathLike[str],
    metrics_out: str | os.PathLike[str],
    tables_dir: str | os.PathLike[str],
    figure_prefix: str | os.PathLike[str],
) -> dict[str, Any]:
    sources = sorted({s["stage1"] for s in regimes.values() if s.get("stage1")})
    models = [*regimes, *(f"stage1-{s}" for s in sources), "base-llm"]
    metrics: dict[str, Any] = {}
    written: list[str] = []
    for run in runs:
        enc, ds = run["encoder"], run["dataset"]
        scores = load_run_scores(eval_root, enc, ds, llm, models)
        if not scores:
            raise ModgapError(f"no evaluation scores under {eval_root}/{enc}/{ds}/{llm}")
        geometry = _align_geometry(Path(align_metrics_root) / enc / f"{ds}.json")
        summary = _run_summary(scores, regimes, sources, geometry, eval_root, enc, ds, llm)
        metrics.setdefault(enc, {})[ds] = summary
        out_dir = Path(tables_dir) / enc / ds
        written += write_table(_regime_frame(summary, regimes), out_dir / "regimes",
                               caption=f"MLLM regimes on the held-out mini-suite ({enc} / {ds}, {llm})")
        written += write_table(_probe_frame(summary), out_dir / "stage1_probe",
                               caption="Stage-1-only probe: captioning from real images after Stage 1 alone")
        lmms = _lmms_frame(Path(eval_root) / enc / ds / llm, regimes)
        if not lmms.empty:  # paper tier: the public benchmarks through lmms-eval
            summary["lmms_eval"] = _lmms_metrics(lmms)
            written += write_table(lmms, out_dir / "lmms_eval", caption="lmms-eval benchmarks (with images and blind)")
        for key, table in paper_tables()["tables"].items():
            written += write_table(_paper_frame(table, summary, regimes), out_dir / key, caption=table["title"])
    written += write_table(_paper_reference_frame(), Path(tables_dir) / "paper_reference",
                           caption="The papers' MLLM tables as printed (11 public benchmarks; reference only)")
    metrics["tables"] = sorted(written)
    write_json_atomic(metrics_out, {**metrics, "environment": environment()})  # modgap.provenance
    from modgap.evaluation.figures import eval_summary_figure

    eval_summary_figure(metrics, runs, regimes, figure_prefix)
    return {"runs": len(runs), "tables": len(written)}


def _run_summary(scores: Mapping[str, Any], regimes: Mapping[str, Mapping[str, Any]], sources: Sequence[str],
                 geometry: Mapping[str, Mapping[str, float]], eval_root: str | os.PathLike[str], enc: str, ds: str,
                 llm: str) -> dict[str, Any]:
    summary: dict[str, Any] = {"regimes": {}, "probes": {}, "base_llm": None}
    for name, spec in regimes.items():
        if name not in scores:
            continue
        row = {"stage1": spec.get("stage1"), "stage2": spec.get("stage2"), **regime_summary(scores[name])}
        row["geometry"] = {k: geometry.get(str(spec.get("stage1")), {}).get(k) for k in GEOMETRY}
        row.update(_interval_of(eval_root, enc, ds, llm, name, "image"))
        for condition in scores[name]:
            if condition != "image":
                ci = _interval_of(eval_root, enc, ds, llm, name, condition)
                row.update({f"{condition}_{k}": v for k, v in ci.items()})
        reference = find_regime(regimes, "identity", spec.get("stage2", "image"))
        if reference and reference != name and reference in scores and "image" in scores[name]:
            row["mcnemar"] = paired_tests(eval_root, enc, ds, llm, name, reference)
        summary["regimes"][name] = row
    for source in sources:
        probe = scores.get(f"stage1-{source}", {}).get("image")
        if probe:
            summary["probes"][source] = {**probe["caption"],
                                         "geometry": {k: geometry.get(source, {}).get(k) for k in GEOMETRY}}
    if "base-llm" in scores:
        summary["base_llm"] = {**regime_summary({"image": scores["base-llm"]["blind"]}),
                               **_interval_of(eval_root, enc, ds, llm, "base-llm", "blind")}
    return summary


def _interval_of(eval_root: str | os.PathLike[str], enc: str, ds: str, llm: str, model: str,
                 condition: str) -> dict[str, float]:
    path = Path(eval_root) / enc / ds / llm / model / f"{condition}.jsonl"
    if not path.is_file():
        return {}
    records = read_jsonl(path)
    # recomputed from the records, so score files written before parse_rate existed still report it
    scored = [r for r in records if r.get("task") in ("pope", "choice")]
    return {**avg_interval(records), "parse_rate": parse_rate(scored)}


def _align_geometry(path: Path) -> dict[str, dict[str, float]]:
    if not path.is_file():
        return {}
    return read_json(path).get("methods", {})


def _regime_frame(summary: Mapping[str, Any], regimes: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    rows = []
    for name, row in summary["regimes"].items():
        rows.append({
            "regime": name, "stage 1": row["stage1"] or "—", "stage 2": row["stage2"],
            "CIDEr-D": row["caption_cider_d"], "BLEU-4": row["caption_bleu4"],
            "POPE rand": row["pope_random_accuracy"], "POPE pop": row["pope_popular_accuracy"],
            "POPE adv": row["pope_adversarial_accuracy"], "POPE F1": row["pope_f1"],
            "MC acc": row["choice_accuracy"], "MC circular": row["choice_circular_accuracy"], "Avg": row["avg"],
            "Avg 95% CI": _interval([row.get("avg_ci_low"), row.get("avg_ci_high")]) if "avg_ci_low" in row else None,
            "blind Avg": row.get("blind_avg"), "B2 gap": row.get("blind_gap"),
            "p vs No Align (POPE rand)": _get(row, "mcnemar", "pope_random", "p_value"),
            "p vs No Align (MC circ.)": _get(row, "mcnemar", "choice", "p_value"),
            "Δµ held-out (stage-1 input)": row["geometry"].get("delta_mu"),
        })
    base = summary.get("base_llm")
    if base:
        rows.append({"regime": "base LLM, blind (B1)", "stage 1": "—", "stage 2": "—",
                     "POPE rand": base["pope_random_accuracy"], "POPE pop": base["pope_popular_accuracy"],
                     "POPE adv": base["pope_adversarial_accuracy"], "POPE F1": base["pope_f1"],
                     "MC acc": base["choice_accuracy"], "MC circular": base["choice_circular_accuracy"],
                     "Avg": base["avg"]})
    return pd.DataFrame(rows)


def _probe_frame(summary: Mapping[str, Any]) -> pd.DataFrame:
    rows = []
    for source, probe in summary["probes"].items():
        g = probe["geometry"]
        rows.append({"stage-1 input": source, "CIDEr-D": probe["cider_d"],
                     "CIDEr-D 95% CI": _interval(probe.get("cider_d_ci")), "BLEU-4": probe["bleu4"],
                     "mention recall": probe.get("mention_recall"), "Δµ held-out": g.get("delta_mu"),
                     "M_X": g.get("M_X"), "Φ": g.get("Phi"), "Ω_20": g.get("Omega_20")})
    return pd.DataFrame(rows)


def _paper_frame(table: Mapping[str, Any], summary: Mapping[str, Any],
                 regimes: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    columns = paper_tables()["columns"]
    rows = []
    for spec in table["rows"]:
        model, ours = _match(spec, summary, regimes)
        paper = dict(zip(columns, spec["paper"], strict=True))
        rows.append({
            "method": spec["label"],
            "our model": model or spec.get("missing") or "not run (no matching mllm.regimes entry)",
            "CIDEr-D": ours.get("caption_cider_d"), "POPE acc": ours.get("pope_accuracy"),
            "MC circular": ours.get("choice_circular_accuracy"), "Avg (ours, %)": _pct(ours.get("avg")),
            "blind gap (%)": _pct(ours.get("blind_gap")),
            **{f"paper {c}": paper[c] for c in PAPER_COLUMNS_SHOWN},
        })
    return pd.DataFrame(rows)


def _match(spec: Mapping[str, Any], summary: Mapping[str, Any],
           regimes: Mapping[str, Mapping[str, Any]]) -> tuple[str | None, dict[str, Any]]:
    match = spec.get("match")
    if not match:
        return None, {}
    if match.get("model") == "base-llm":
        return ("base-llm (B1)", summary["base_llm"]) if summary.get("base_llm") else (None, {})
    name = find_regime(regimes, match.get("stage1"), match["stage2"])
    if name is None or name not in summary["regimes"]:
        return None, {}
    return name, summary["regimes"][name]


def _lmms_frame(root: Path, regimes: Mapping[str, Any]) -> pd.DataFrame:
    """One row per regime × condition × task × metric from the lmms-eval result files that exist."""
    rows = []
    for regime in regimes:
        for variant, condition in (("lmms_eval", "image"), ("lmms_eval_blind", "blind")):
            path = root / regime / f"{variant}.json"
            if not path.is_file():
                continue
            record = read_json(path)
            for task, values in record.get("results", {}).items():
                for metric, value in values.items():
                    if isinstance(value, int | float) and not isinstance(value, bool) and "stderr" not in metric:
                        rows.append({"regime": regime, "condition": condition, "task": task,
                                     "metric": metric.split(",")[0], "value": float(value),
                                     "harness": record.get("harness", {}).get("lmms_eval")})
    return pd.DataFrame(rows)


def _lmms_metrics(frame: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for row in frame.itertuples(index=False):
        out.setdefault(row.regime, {}).setdefault(row.condition, {}).setdefault(row.task, {})[row.metric] = row.value
    return out


def _paper_reference_frame() -> pd.DataFrame:
    data = paper_tables()
    rows = []
    for key, table in data["tables"].items():
        for spec in table["rows"]:
            paper = dict(zip(data["columns"], spec["paper"], strict=True))
            rows.append({"table": key, "method": spec["label"], **paper})
    return pd.DataFrame(rows)


def _get(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, Mapping) or key not in mapping:
            return None
        mapping = mapping[key]
    return mapping


def _pct(value: float | None) -> float | None:
    return None if value is None else 100.0 * value


def _interval(ci: Sequence[float] | None) -> str | None:
    if not ci or any(np.isnan(c) for c in ci):
        return None
    return f"[{ci[0]:.3g}, {ci[1]:.3g}]"
