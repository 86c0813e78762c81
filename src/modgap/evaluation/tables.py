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
from modgap.evaluation.image_use import image_use, stage1_gate
from modgap.evaluation.io import read_jsonl
from modgap.evaluation.runner import CONDITIONS
from modgap.evaluation.score import parse_rate, rule_scored_records
from modgap.evaluation.tasks import registered_tasks, rule_scored_tasks
from modgap.io import read_json, write_json_atomic
from modgap.output.tables import write_table
from modgap.provenance import environment

GEOMETRY = ("delta_mu", "delta_mu_in_sample", "M_Z", "M_X", "Phi", "Psi", "Omega_20", "A_r")
PAPER_COLUMNS_SHOWN = ("POPE", "Avg")


@cache
def paper_tables() -> dict[str, Any]:
    text = resources.files("modgap.evaluation").joinpath("paper_tables.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def load_run_scores(
    eval_root: str | os.PathLike[str], enc: str, ds: str, llm: str, models: Sequence[str]
) -> dict[str, dict[str, dict[str, Any]]]:
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
    row: dict[str, Any] = {}
    for task in registered_tasks():
        row.update(task.summary(image.get(task.name)))
    row.update(avg=image.get("avg"), parse_rate=image.get("parse_rate"))
    for task in registered_tasks():
        row.update(task.detail(image.get(task.name)))
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
    """{image: {task: outcome}} for the rule-scored tasks (POPE: per strategy the correctness of the
    image's balanced set; MC: whether every rotation was right), images in first-seen order."""
    out: dict[str, dict[str, Any]] = {}
    for task in rule_scored_tasks():
        for image, outcome in task.image_outcomes(records).items():
            out.setdefault(image, {})[task.name] = outcome
    return out


def _average(images: Sequence[Mapping[str, Any]]) -> float:
    """Mean of the rule-scored tasks' accuracies (POPE over strategies, circular MC) over these images."""
    parts = []
    for task in rule_scored_tasks():
        part = task.average_of([img[task.name] for img in images if task.name in img])
        if part is not None:
            parts.append(part)
    return float(np.mean(parts)) if parts else float("nan")


def paired_tests(
    eval_root: str | os.PathLike[str], enc: str, ds: str, llm: str, model: str, reference: str
) -> dict[str, Any]:
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
    """{unit: {item key: correct}} of every rule-scored task (POPE: ``pope_<strategy>``; MC: ``choice``)."""
    out: dict[str, dict[str, bool]] = {}
    for task in rule_scored_tasks():
        out.update(task.units(records))
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
        written += write_table(
            _regime_frame(summary, regimes),
            out_dir / "regimes",
            caption=f"MLLM regimes on the held-out mini-suite ({enc} / {ds}, {llm})",
        )
        written += write_table(
            _probe_frame(summary),
            out_dir / "stage1_probe",
            caption="Stage-1-only probe: captioning from real images after Stage 1 alone",
        )
        lmms = _lmms_frame(Path(eval_root) / enc / ds / llm, regimes)
        if not lmms.empty:  # paper tier: the public benchmarks through lmms-eval
            summary["lmms_eval"] = _lmms_metrics(lmms)
            written += write_table(lmms, out_dir / "lmms_eval", caption="lmms-eval benchmarks (with images and blind)")
        for key, table in paper_tables()["tables"].items():
            written += write_table(_paper_frame(table, summary, regimes), out_dir / key, caption=table["title"])
    written += write_table(
        _paper_reference_frame(),
        Path(tables_dir) / "paper_reference",
        caption="The papers' MLLM tables as printed (11 public benchmarks; reference only)",
    )
    metrics["tables"] = sorted(written)
    write_json_atomic(metrics_out, {**metrics, "environment": environment()})  # modgap.provenance
    from modgap.evaluation.figures import eval_summary_figure

    eval_summary_figure(metrics, runs, regimes, figure_prefix)
    return {"runs": len(runs), "tables": len(written)}


def _run_summary(
    scores: Mapping[str, Any],
    regimes: Mapping[str, Mapping[str, Any]],
    sources: Sequence[str],
    geometry: Mapping[str, Mapping[str, float]],
    eval_root: str | os.PathLike[str],
    enc: str,
    ds: str,
    llm: str,
) -> dict[str, Any]:
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
        use = _image_use_of(eval_root, enc, ds, llm, name)
        if use:
            row["image_use"] = use
        reference = find_regime(regimes, "identity", spec.get("stage2", "image"))
        if reference and reference != name and reference in scores and "image" in scores[name]:
            row["mcnemar"] = paired_tests(eval_root, enc, ds, llm, name, reference)
        summary["regimes"][name] = row
    for source in sources:
        probe = scores.get(f"stage1-{source}", {}).get("image")
        if probe:
            use = _image_use_of(eval_root, enc, ds, llm, f"stage1-{source}").get("caption")
            summary["probes"][source] = {
                **probe["caption"],
                "geometry": {k: geometry.get(source, {}).get(k) for k in GEOMETRY},
                "image_use": use,
                "gate": stage1_gate(use),
            }
    for row in summary["regimes"].values():  # each regime carries its Stage-1 input's gate
        gate = (summary["probes"].get(str(row["stage1"])) or {}).get("gate")
        row["stage1_gate"] = None if gate is None else gate.get("passed")
    if "base-llm" in scores:
        summary["base_llm"] = {
            **regime_summary({"image": scores["base-llm"]["blind"]}),
            **_interval_of(eval_root, enc, ds, llm, "base-llm", "blind"),
        }
    return summary


def _interval_of(
    eval_root: str | os.PathLike[str], enc: str, ds: str, llm: str, model: str, condition: str
) -> dict[str, float]:
    path = Path(eval_root) / enc / ds / llm / model / f"{condition}.jsonl"
    if not path.is_file():
        return {}
    records = read_jsonl(path)
    # recomputed from the records, so score files written before parse_rate existed still report it
    return {**avg_interval(records), "parse_rate": parse_rate(rule_scored_records(records))}


def _image_use_of(eval_root: str | os.PathLike[str], enc: str, ds: str, llm: str, model: str) -> dict[str, Any]:
    """Image − shuffled comparisons of one model (empty without both sample files)."""
    root = Path(eval_root) / enc / ds / llm / model
    if not (root / "image.jsonl").is_file() or not (root / "shuffled.jsonl").is_file():
        return {}
    return image_use(read_jsonl(root / "image.jsonl"), read_jsonl(root / "shuffled.jsonl"))


def _align_geometry(path: Path) -> dict[str, dict[str, float]]:
    if not path.is_file():
        return {}
    return read_json(path).get("methods", {})


def _regime_frame(summary: Mapping[str, Any], regimes: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    rows = []
    for name, row in summary["regimes"].items():
        rows.append(
            {
                "regime": name,
                "stage 1": row["stage1"] or "—",
                "stage 2": row["stage2"],
                "Stage-1 gate": _gate_text(row.get("stage1_gate")) if row["stage1"] else "—",
                **{k: v for task in registered_tasks() for k, v in task.table_columns(row).items()},
                "Avg": row["avg"],
                "Avg 95% CI": _interval([row.get("avg_ci_low"), row.get("avg_ci_high")])
                if "avg_ci_low" in row
                else None,
                "blind Avg": row.get("blind_avg"),
                "B2 gap": row.get("blind_gap"),
                **_use_columns(row.get("image_use") or {}),
                **{k: v for task in registered_tasks() for k, v in task.test_columns(row.get("mcnemar") or {}).items()},
                "Δµ held-out (stage-1 input)": row["geometry"].get("delta_mu"),
            }
        )
    base = summary.get("base_llm")
    if base:
        rows.append(
            {
                "regime": "base LLM, blind (B1)",
                "stage 1": "—",
                "stage 2": "—",
                **{k: v for task in rule_scored_tasks() for k, v in task.table_columns(base).items()},
                "Avg": base["avg"],
            }
        )
    return pd.DataFrame(rows)


def _use_columns(use: Mapping[str, Any]) -> dict[str, Any]:
    """Image use (image − shuffled) columns of the regime table."""
    pope, choice, caption = use.get("pope") or {}, use.get("choice") or {}, use.get("caption") or {}
    return {
        "POPE img−shuf": _difference(pope),
        "POPE img−shuf p": pope.get("p_value"),
        "MC circ img−shuf": _difference(choice),
        "MC circ img−shuf p": choice.get("p_value"),
        "mention img−shuf": _get(caption, "mention_recall", "difference"),
    }


def _gate_text(passed: bool | None) -> str:
    return {True: "passed", False: "failed", None: "not judged"}[passed]


def _difference(part: Mapping[str, Any]) -> float | None:
    return part["image"] - part["shuffled"] if part else None


def _probe_frame(summary: Mapping[str, Any]) -> pd.DataFrame:
    rows = []
    for source, probe in summary["probes"].items():
        g = probe["geometry"]
        rows.append(
            {
                "stage-1 input": source,
                "CIDEr-D": probe["cider_d"],
                "CIDEr-D 95% CI": _interval(probe.get("cider_d_ci")),
                "BLEU-4": probe["bleu4"],
                "mention recall": probe.get("mention_recall"),
                "mention recall, shuffled": _get(probe, "image_use", "mention_recall", "shuffled"),
                "mention Δ 95% CI": _interval(_get(probe, "image_use", "mention_recall", "ci")),
                "CIDEr-D, shuffled": _get(probe, "image_use", "cider_d", "shuffled"),
                "CIDEr-D Δ 95% CI": _interval(_get(probe, "image_use", "cider_d", "ci")),
                "gate": _gate_text((probe.get("gate") or {}).get("passed")),
                "Δµ held-out": g.get("delta_mu"),
                "M_X": g.get("M_X"),
                "Φ": g.get("Phi"),
                "Ω_20": g.get("Omega_20"),
            }
        )
    return pd.DataFrame(rows)


def _paper_frame(
    table: Mapping[str, Any], summary: Mapping[str, Any], regimes: Mapping[str, Mapping[str, Any]]
) -> pd.DataFrame:
    columns = paper_tables()["columns"]
    rows = []
    for spec in table["rows"]:
        model, ours = _match(spec, summary, regimes)
        paper = dict(zip(columns, spec["paper"], strict=True))
        rows.append(
            {
                "method": spec["label"],
                "our model": model or spec.get("missing") or "not run (no matching mllm.regimes entry)",
                "CIDEr-D": ours.get("caption_cider_d"),
                "POPE acc": ours.get("pope_accuracy"),
                "MC circular": ours.get("choice_circular_accuracy"),
                "Avg (ours, %)": _pct(ours.get("avg")),
                "blind gap (%)": _pct(ours.get("blind_gap")),
                **{f"paper {c}": paper[c] for c in PAPER_COLUMNS_SHOWN},
            }
        )
    return pd.DataFrame(rows)


def _match(
    spec: Mapping[str, Any], summary: Mapping[str, Any], regimes: Mapping[str, Mapping[str, Any]]
) -> tuple[str | None, dict[str, Any]]:
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
                        rows.append(
                            {
                                "regime": regime,
                                "condition": condition,
                                "task": task,
                                "metric": metric.split(",")[0],
                                "value": float(value),
                                "harness": record.get("harness", {}).get("lmms_eval"),
                            }
                        )
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
