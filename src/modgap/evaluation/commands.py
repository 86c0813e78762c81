"""``modgap eval …``: build the benchmark suite, evaluate one model under one visual condition,
and aggregate every score into the papers' tables and the claims report."""

from __future__ import annotations

import argparse
import json
from typing import Any

from modgap.commandline import add_command


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "eval",
        help="benchmark suite, MLLM evaluation, paper tables, claims report",
        description="The evaluation stage: build the mini-benchmark suite from the held-out split, decode each "
        "trained model under each visual condition (or run lmms-eval at the paper tier), then aggregate the "
        "scores into the papers' tables and judge every claim of both papers.",
    )
    sub = parser.add_subparsers(
        dest="eval_command", required=True, metavar="SUBCOMMAND", help="what to do (see the list below)"
    )

    suite = add_command(
        sub,
        "suite",
        help="build the mini-benchmark suite from the held-out split (JSON lines)",
        description="Captioning, POPE-style yes/no and circular multiple-choice items from the images of the "
        "eval.suite split of --manifest (checked not to leak into train), written as JSON lines; prints a "
        "summary. Adversarial POPE negatives need --encoder-model.",
    )
    suite.add_argument("--manifest", required=True, help="prepared manifest.parquet (resources/datasets/{ds})")
    suite.add_argument(
        "--params", default="{}", help="eval.suite settings as inline JSON or a file (unknown keys fail)"
    )
    suite.add_argument(
        "--encoder-model",
        default=None,
        help="encoder model whose text embeddings rank labels (adversarial POPE negatives); none: no encoder",
    )
    suite.add_argument(
        "--encoder-pretrained", default=None, help="open_clip pretrained tag or checkpoint path of --encoder-model"
    )
    _add_backend_arguments(suite)
    suite.add_argument(
        "--out", required=True, help="suite JSON lines to write, e.g. results/eval/{enc}/{ds}/suite.jsonl"
    )
    suite.set_defaults(func=_suite)

    run = add_command(
        sub,
        "run",
        help="decode one model over the suite under one visual condition",
        description="Greedy answers of one stage folder (or its base LLM) to the suite's items of --tasks under "
        "one visual condition: image (the item's image embedding), blind (no visual tokens), mean (the "
        "split's mean image embedding) or shuffled (another item's image); scores them with bootstrap "
        "intervals. Writes PREFIX.jsonl (per sample) and PREFIX.json (scores).",
    )
    run.add_argument("--model-dir", required=True, help="a completed stage folder (DONE.json)")
    run.add_argument(
        "--kind",
        choices=("mllm", "base-llm"),
        default="mllm",
        help="base-llm: the stage's untrained base LLM, blind only (B1)",
    )
    run.add_argument("--suite", required=True, help="suite JSON lines from `modgap eval suite`")
    run.add_argument("--tasks", default="caption,pope,choice", help="comma-separated suite tasks to run")
    run.add_argument("--condition", default="image", help="image, blind, mean or shuffled")
    run.add_argument(
        "--embeddings-root", default=None, help="results/embeddings/{enc}/{ds} (needed by every condition but blind)"
    )
    run.add_argument(
        "--split", default="test", help="split of --embeddings-root whose image embeddings are read (the suite's split)"
    )
    run.add_argument("--batch-size", type=int, default=16, help="prompts per generation batch")
    run.add_argument(
        "--max-new-tokens",
        default="{}",
        help='JSON per task, e.g. {"caption": 24}, over the defaults caption 24, pope 4, choice 4',
    )
    run.add_argument("--threads", type=int, default=1, help="torch CPU threads (torch.set_num_threads)")
    run.add_argument("--seed", type=int, default=0, help="seed of the shuffled condition's pairing and the bootstrap")
    run.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of each score's interval")
    run.add_argument(
        "--scoring",
        choices=("constrained", "free"),
        default="constrained",
        help="POPE/MC: constrained = the option with the highest log-probability (never unparsed); "
        "free = rule-parse the greedy text (unparsed counts as wrong)",
    )
    run.add_argument("--out-prefix", required=True, help="writes PREFIX.jsonl (samples) and PREFIX.json (scores)")
    run.set_defaults(func=_run)

    lmms = add_command(
        sub,
        "lmms",
        help="run lmms-eval (paper-tier benchmarks) on one stage folder",
        description="Evaluate one completed stage folder on lmms-eval tasks through the project's lmms-eval model "
        "plugin (with images, or --blind), seeding every lmms-eval random source with --seed. Needs the "
        "eval extra (pip install -e '.[eval]').",
    )
    lmms.add_argument("--model-dir", required=True, help="a completed stage folder (DONE.json)")
    lmms.add_argument("--encoder-model", required=True, help="the encoder model the MLLM was trained on")
    lmms.add_argument(
        "--encoder-pretrained", default=None, help="open_clip pretrained tag or checkpoint path of --encoder-model"
    )
    _add_backend_arguments(lmms)
    lmms.add_argument("--tasks", required=True, help="comma-separated lmms-eval task names")
    lmms.add_argument("--include-path", default=None, help="folder of extra task YAMLs (local tasks)")
    lmms.add_argument("--limit", type=int, default=None, help="first N documents per task (smoke runs)")
    lmms.add_argument("--batch-size", type=int, default=16, help="lmms-eval batch size")
    lmms.add_argument("--device", default="cpu", help="torch device lmms-eval runs the model on (cpu, cuda, ...)")
    lmms.add_argument("--blind", action="store_true", help="no visual tokens (the image-ablated score)")
    lmms.add_argument("--seed", type=int, default=0, help="lmms-eval's random, numpy, torch and few-shot seeds")
    lmms.add_argument("--out-prefix", required=True, help="writes PREFIX.json and PREFIX.samples.jsonl")
    lmms.set_defaults(func=_lmms)

    report = add_command(
        sub,
        "report",
        help="aggregate scores: metrics JSON, regime and paper tables, summary figure",
        description="Read every score file under EVAL_ROOT/{enc}/{ds}/{llm} and the alignment geometry, and write "
        "the regime, stage-1 probe, lmms-eval (when present) and paper-layout tables per run, the papers' "
        "reference table, the metrics JSON and the summary figure.",
    )
    report.add_argument("--runs", required=True, help='JSON list of {"encoder":..., "dataset":...}')
    report.add_argument("--regimes", required=True, help="JSON of mllm.regimes (regime -> stage1/stage2 inputs)")
    report.add_argument("--llm", required=True, help="LLM name: the {llm} folder of the score files read")
    report.add_argument(
        "--eval-root", default="results/eval", help="scores under ROOT/{enc}/{ds}/{llm}/{model}/{condition}.json"
    )
    report.add_argument(
        "--align-metrics-root",
        default="results/metrics/align",
        help="alignment metrics ROOT/{enc}/{ds}.json (the geometry columns)",
    )
    report.add_argument("--metrics-out", required=True, help="metrics JSON to write (results/metrics/eval.json)")
    report.add_argument("--tables-dir", required=True, help="tables go to DIR/{enc}/{ds}/ (+ DIR/paper_reference)")
    report.add_argument("--figure-prefix", required=True, help="summary figure written as PREFIX.png and PREFIX.pdf")
    report.set_defaults(func=_report)

    claims = add_command(
        sub,
        "claims",
        help="each claim of both papers -> measurement, tolerance, verdict",
        description="Judge every claim of both papers for each run from the metrics files (holds, does not hold, "
        "or not measurable at this tier); with --embeddings-root the nulls and bootstrap intervals are first "
        "computed from the embeddings, substitutes and spectra. Writes a markdown report and a metrics JSON.",
    )
    claims.add_argument("--runs", required=True, help='JSON list of {"encoder":..., "dataset":...}')
    claims.add_argument(
        "--tier",
        choices=("embedded", "paper"),
        required=True,
        help="claims about absolute values of the paper's encoder are judged only at the paper tier",
    )
    claims.add_argument("--gap", required=True, help="results/metrics/gap.json")
    claims.add_argument("--encoder", default=None, help="results/metrics/encoder.json")
    claims.add_argument(
        "--align-metrics-root", default="results/metrics/align", help="alignment metrics ROOT/{enc}/{ds}.json"
    )
    claims.add_argument("--eval", default=None, help="results/metrics/eval.json")
    claims.add_argument(
        "--embeddings-root",
        default=None,
        help="results/embeddings: compute the nulls and bootstrap intervals from the embeddings",
    )
    claims.add_argument("--align-root", default="results/align", help="per-method substitutes (diag split)")
    claims.add_argument("--gap-root", default="results/gap", help="stats.json + spectra.npz per run")
    claims.add_argument("--null-boot", type=int, default=200, help="bootstrap resamples of the diagnostic pairs")
    claims.add_argument("--null-seed", type=int, default=0, help="seed of the null draws and bootstrap resamples")
    claims.add_argument("--markdown-out", required=True, help="markdown report to write (results/claims.md)")
    claims.add_argument("--metrics-out", required=True, help="claims JSON to write (results/metrics/claims.json)")
    claims.set_defaults(func=_claims)


def _add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """The encoder-backend flags of `modgap embed extract`, so evaluation loads the extraction's encoder."""
    parser.add_argument(
        "--encoder-backend",
        default="open_clip",
        help="registered encoder backend (modgap.embed.backends) that loads --encoder-model",
    )
    parser.add_argument(
        "--encoder-backend-options",
        default=None,
        help="backend-specific settings as a JSON object (llm2clip: config encoders.<name>.hf)",
    )


def _suite(args: argparse.Namespace) -> int:
    from modgap.config import parse_json_params
    from modgap.data.prepare import read_manifest
    from modgap.evaluation.io import write_jsonl
    from modgap.evaluation.suite import build_suite, suite_summary

    params = parse_json_params(args.params, "eval.suite")
    similarity = None
    if args.encoder_model:
        from modgap.embed.backends import parse_backend_options

        options = parse_backend_options(args.encoder_backend_options, "--encoder-backend-options")
        similarity = _label_similarity(args.encoder_model, args.encoder_pretrained, args.encoder_backend, options)
    items = build_suite(read_manifest(args.manifest), params=params, similarity=similarity)
    write_jsonl(args.out, (i.to_json() for i in items))
    print(json.dumps(suite_summary(items), sort_keys=True))
    return 0


def _label_similarity(
    model: str,
    pretrained: str | None,
    backend: str = "open_clip",
    options: dict[str, Any] | None = None,
) -> Any:
    """Cosine similarity of label texts in the encoder's text space (cached per label), with the encoder
    loaded through the backend registry as the extraction stage loads it."""
    import numpy as np

    from modgap.embed.backends import create_encoder

    encoder = create_encoder(backend, model, pretrained, device="cpu", options=options)
    cache: dict[str, np.ndarray] = {}

    def embed(labels: list[str]) -> np.ndarray:
        todo = [lab for lab in dict.fromkeys(labels) if lab not in cache]
        if todo:
            for lab, vec in zip(todo, encoder.encode_texts(todo, progress=False), strict=True):
                cache[lab] = vec
        return np.stack([cache[lab] for lab in labels])

    def similarity(label: str, candidates: list[str]) -> np.ndarray:
        return embed(list(candidates)) @ embed([label])[0]

    return similarity


def _run(args: argparse.Namespace) -> int:
    import torch

    from modgap.config import parse_json_params
    from modgap.evaluation.io import read_suite, write_jsonl
    from modgap.evaluation.runner import load_base_llm, run_items, visual_inputs
    from modgap.evaluation.score import score_records
    from modgap.io import write_json_atomic
    from modgap.mllm.data import visual_table
    from modgap.mllm.generate import load_mllm

    torch.set_num_threads(args.threads)
    tasks = [t for t in args.tasks.split(",") if t]
    items = [i for i in read_suite(args.suite) if i.task in tasks]
    table = None
    if args.condition != "blind":
        if not args.embeddings_root:
            from modgap.errors import ConfigError

            raise ConfigError(f"--condition {args.condition} needs --embeddings-root")
        table = visual_table("image", embeddings_root=args.embeddings_root, split=args.split)
    visual = visual_inputs(items, args.condition, table, seed=args.seed)
    if args.kind == "base-llm":
        from modgap.errors import ConfigError

        if args.condition != "blind":
            raise ConfigError("--kind base-llm has no projector: only --condition blind is meaningful")
        mllm = load_base_llm(args.model_dir)
    else:
        mllm = load_mllm(args.model_dir)
    records = run_items(
        mllm,
        items,
        visual,
        max_new_tokens=parse_json_params(args.max_new_tokens, "max_new_tokens"),
        batch_size=args.batch_size,
        scoring=args.scoring,
    )
    scores = score_records(records, resamples=args.bootstrap, seed=args.seed)
    meta = {
        "model_dir": args.model_dir,
        "kind": args.kind,
        "condition": args.condition,
        "template": mllm.template,
        "tasks": tasks,
        "items": len(items),
        "split": args.split,
        "decoding": "greedy",
        "scoring": args.scoring,
    }
    write_jsonl(f"{args.out_prefix}.jsonl", records)
    write_json_atomic(f"{args.out_prefix}.json", {"meta": meta, "scores": scores})
    print(json.dumps({"avg": scores.get("avg"), **meta}, sort_keys=True))
    return 0


def _report(args: argparse.Namespace) -> int:
    from modgap.evaluation.tables import write_eval_report

    summary = write_eval_report(
        json.loads(args.runs),
        json.loads(args.regimes),
        args.llm,
        eval_root=args.eval_root,
        align_metrics_root=args.align_metrics_root,
        metrics_out=args.metrics_out,
        tables_dir=args.tables_dir,
        figure_prefix=args.figure_prefix,
    )
    print(json.dumps(summary, sort_keys=True))
    return 0


def _claims(args: argparse.Namespace) -> int:
    from modgap.evaluation.claims import write_claims_report
    from modgap.evaluation.claims_nulls import NullConfig

    counts = write_claims_report(
        json.loads(args.runs),
        tier=args.tier,
        gap=args.gap,
        encoder=args.encoder,
        align_metrics_root=args.align_metrics_root,
        eval_metrics=args.eval,
        markdown_out=args.markdown_out,
        metrics_out=args.metrics_out,
        embeddings_root=args.embeddings_root,
        align_root=args.align_root,
        gap_root=args.gap_root,
        null_config=NullConfig(boot=args.null_boot, seed=args.null_seed),
    )
    print(json.dumps(counts, sort_keys=True))
    return 0


def _lmms(args: argparse.Namespace) -> int:
    from modgap.embed.backends import parse_backend_options
    from modgap.evaluation.lmms_run import run_lmms_eval

    results = run_lmms_eval(
        stage_dir=args.model_dir,
        encoder=args.encoder_model,
        pretrained=args.encoder_pretrained,
        backend=args.encoder_backend,
        backend_options=parse_backend_options(args.encoder_backend_options, "--encoder-backend-options"),
        tasks=[t for t in args.tasks.split(",") if t],
        prefix=args.out_prefix,
        include_path=args.include_path,
        limit=args.limit,
        batch_size=args.batch_size,
        device=args.device,
        blind=args.blind,
        seed=args.seed,
    )
    print(json.dumps(results, sort_keys=True, default=str))
    return 0
