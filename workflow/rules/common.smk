# Shared helpers for the rules: target lists, source-file dependencies, parameter serialisation.

import json
import os
import shlex
from pathlib import Path

from modgap.align.spec import STUDY_COMMANDS, figure_stems
from modgap.evaluation.spec import MODEL_KINDS as EVAL_MODEL_KINDS
from modgap.evaluation.spec import run_sources as eval_run_sources
from modgap.evaluation.spec import tasks_for as eval_tasks_for
from modgap.gap.spec import figure_files as gap_figure_files

SPLITS = config["embed"]["splits"]
RUNS = [(run["encoder"], run["dataset"]) for run in config["runs"]]
DYNAMICS_DATASETS = config["gap"]["dynamics"]["datasets"]
ALIGN_SPLITS = config["align"]["splits"]
ALIGN_METHODS = list(config["align"]["methods"])
ALIGN_STUDIES = list(config["align"]["studies"])
# mllm.run_regimes (optional) picks the regimes a config trains: overlays merge `regimes` with the
# default config's, so a paper-table config names its rows here instead of removing the others.
MLLM_REGIMES = {
    name: spec
    for name, spec in config["mllm"]["regimes"].items()
    if name in config["mllm"].get("run_regimes", config["mllm"]["regimes"])
}
MLLM_LLM = config["mllm"]["llm"]
# The figures `modgap align report` draws for this config, declared by the alignment stage itself.
ALIGN_FIGURES = figure_stems(ALIGN_METHODS, ALIGN_STUDIES)
# Files every stage imports; editing them reruns every stage (the CLI assembly and argparse helpers are not
# among them: they change no result).
_NOT_CORE = {"cli.py", "commandline.py", "config.py", "__init__.py"}
CORE_SOURCES = sorted(str(p) for p in Path("src/modgap").glob("*.py") if p.name not in _NOT_CORE)


wildcard_constraints:
    enc=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    ds=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    split="|".join(SPLITS),
    method="|".join(ALIGN_METHODS),
    study="|".join(STUDY_COMMANDS),
    regime="|".join(MLLM_REGIMES) or "^$",
    source="|".join(["image", *ALIGN_METHODS]),
    condition="image|blind|mean|shuffled",
    model="|".join([*MLLM_REGIMES, *(f"stage1-{m}" for m in ["image", *ALIGN_METHODS]), "base-llm"]),


def src_files(*packages):
    """Source files of the given modgap sub-packages plus the core modules.

    Snakemake does not see edits to imported Python modules, so each rule lists the code it runs
    as inputs: editing one of these files reruns the rule and what depends on it.
    """
    files = list(CORE_SOURCES)
    for package in packages:
        files += sorted(str(p) for p in Path("src/modgap", package).rglob("*.py"))
    return files


def as_json(obj):
    """Canonical JSON for params: key order never causes a spurious rerun."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def encoder_checkpoint(enc):
    """The open_clip `pretrained=` argument: a trained checkpoint path or a pretrained tag."""
    spec = config["encoders"][enc]
    if "train" in spec:
        return f"results/encoders/{enc}/open_clip.pt"
    return spec["pretrained"]


def lit_params(enc):
    """LiT hyper-parameters of a trained encoder (its `dataset` key picks the manifest instead)."""
    return {k: v for k, v in config["encoders"][enc]["train"].items() if k != "dataset"}


def trained_checkpoint_input(wildcards):
    """Dependency on the encoder rule, only for encoders this workflow trains itself."""
    if "train" in config["encoders"][wildcards.enc]:
        return [f"results/encoders/{wildcards.enc}/open_clip.pt"]
    return []


def embedding_files(enc, ds, split):
    root = f"results/embeddings/{enc}/{ds}/{split}"
    return {
        "image": f"{root}/image.npy",
        "text": f"{root}/text.npy",
        "image_ids": f"{root}/image_ids.txt",
        "text_ids": f"{root}/text_ids.txt",
        "meta": f"{root}/meta.json",
    }


def all_embeddings():
    return [
        path
        for enc, ds in RUNS
        for split in SPLITS
        for path in embedding_files(enc, ds, split).values()
    ]


def gap_figures():
    """The gap report's figures, as the gap stage declares them (modgap.gap.spec)."""
    return gap_figure_files(RUNS, DYNAMICS_DATASETS)


def study_options(study):
    """CLI options of one alignment study from its config block (lists become repeated values)."""
    options = []
    for key, value in config["align"]["studies"][study].items():
        if key == "params":
            value = as_json(value)
        values = value if isinstance(value, list) else [value]
        # A shell fragment, so each value is quoted here (`:q` would quote the whole fragment as one word).
        options.append(" ".join([shlex.quote(f"--{key}"), *(shlex.quote(str(v)) for v in values)]))
    return " ".join(options)


def substitutes_input(wildcards, source):
    """Substitutes of the train split when a stage's visual input is an alignment method."""
    if source in (None, "image"):
        return []
    return [f"results/align/{wildcards.enc}/{wildcards.ds}/{source}/substitutes/train.npy"]


def visual_args(wildcards, source):
    if source == "image":
        return "--visual image"
    path = f"results/align/{wildcards.enc}/{wildcards.ds}/{source}/substitutes"
    return f"--visual substitute --substitutes {shlex.quote(path)}"


def stage1_input(wildcards):
    source = MLLM_REGIMES[wildcards.regime]["stage1"]
    if source is None:
        return []
    return [f"results/mllm/{wildcards.enc}/{wildcards.ds}/{wildcards.llm}/stage1/{source}/DONE.json"]


def mllm_launcher(rule):
    """`modgap`, or `modgap mllm launch` with the configured accelerate config (multi-GPU, DeepSpeed, FSDP,
    several SLURM nodes: the rule's resources give the node count and GPUs per node)."""
    accelerate_config = config["mllm"].get("accelerate_config")
    if not accelerate_config:
        return "modgap"
    res = resources_of(rule)
    # modgap.mllm.launch: plain accelerate on one node, one srun task per node in a multi-node allocation
    return (f"modgap mllm launch --accelerate-config {shlex.quote(accelerate_config)}"
            f" --nodes {int(res['nodes'])} --gpus-per-node {int(res['gpu'])} --")


def mllm_targets():
    return [
        f"results/mllm/{enc}/{ds}/{MLLM_LLM}/{regime}/stage2/DONE.json" for enc, ds in RUNS for regime in MLLM_REGIMES
    ]


def align_targets():
    return [f"results/metrics/align/{enc}/{ds}.json" for enc, ds in RUNS]


def all_targets():
    return (
        all_embeddings() + report_targets() + ["results/metrics/gap.json"] + align_targets() + mllm_targets()
        + eval_report_targets() + ["results/report.html"]
    )


# --- the HTML report: every PNG figure and CSV table the report rules write ----------------------
def html_report_figures():
    figures = [p for p in report_targets() + gap_figures() if p.endswith(".png")]
    figures += [f"results/figures/align/{enc}/{ds}/{stem}.png" for enc, ds in RUNS for stem in ALIGN_FIGURES]
    return figures + (["results/figures/eval_summary.png"] if MLLM_REGIMES else [])


def html_report_tables():
    tables = ["results/tables/encoder.csv", "results/tables/gap_stats.csv", "results/tables/gap_transforms.csv"]
    tables += [f"results/tables/align/{enc}/{ds}/align_metrics.csv" for enc, ds in RUNS]
    return tables + (["results/tables/eval"] if MLLM_REGIMES else [])  # a directory: its CSVs


def html_report_metrics():
    metrics = ["results/metrics/encoder.json", "results/metrics/gap.json", *align_targets()]
    return metrics + (["results/metrics/eval.json", "results/metrics/claims.json"] if MLLM_REGIMES else [])


def report_targets():
    return [
        "results/metrics/encoder.json",
        "results/tables/encoder.md",
        "results/tables/encoder.csv",
        "results/tables/encoder.tex",
        "results/figures/embedding_pca.png",
        "results/figures/embedding_pca.pdf",
    ]


# --- evaluation: which models run under which visual conditions ----------------------------------
EVAL = config["eval"]
STAGE1_SOURCES = sorted({r["stage1"] for r in MLLM_REGIMES.values() if r["stage1"] is not None})
# --tasks of each kind of evaluated model, from the task registry (modgap.evaluation.spec).
EVAL_TASKS = {kind: eval_tasks_for(kind) for kind in EVAL_MODEL_KINDS}


# What `modgap eval suite|run` import (modgap.evaluation.spec.run_sources): reports and claims live in
# other modules, so editing them does not redo the (slow) decoding.
EVAL_RUN_SOURCES = eval_run_sources()


def eval_models():
    """(model, condition) pairs: every regime under each configured condition; the stage-1 probes
    with real images, and with shuffled ones when that condition is configured (the Stage-1 gate);
    the base LLM blind (B1)."""
    pairs = [(regime, cond) for regime in MLLM_REGIMES for cond in EVAL["conditions"]]
    if EVAL.get("stage1_probe", True):
        probe_conditions = [c for c in ("image", "shuffled") if c == "image" or c in EVAL["conditions"]]
        pairs += [(f"stage1-{source}", cond) for source in STAGE1_SOURCES for cond in probe_conditions]
    if EVAL.get("base_llm", True) and MLLM_REGIMES:
        pairs.append(("base-llm", "blind"))
    return pairs


def eval_model_dir(wildcards):
    """The stage folder a model name refers to (the base LLM reads its config from the first regime)."""
    root = f"results/mllm/{wildcards.enc}/{wildcards.ds}/{wildcards.llm}"
    model = wildcards.model
    if model.startswith("stage1-"):
        return f"{root}/stage1/{model[len('stage1-'):]}"
    if model == "base-llm":
        return f"{root}/{next(iter(MLLM_REGIMES))}/stage2"
    return f"{root}/{model}/stage2"


def eval_tasks(wildcards):
    if wildcards.model.startswith("stage1-"):
        return EVAL_TASKS["probe"]
    if wildcards.model == "base-llm":
        return EVAL_TASKS["base"]
    # Shuffled images get every task, captions included: images - shuffled is the measure of image use.
    return EVAL_TASKS["mllm_image" if wildcards.condition in ("image", "shuffled") else "mllm_control"]


def eval_score_files(enc, ds):
    return [f"results/eval/{enc}/{ds}/{MLLM_LLM}/{model}/{cond}.json" for model, cond in eval_models()]


def lmms_eval_files(enc, ds):
    """lmms-eval results of every regime, with images and blind, when tasks are configured."""
    if not EVAL.get("lmms_eval", {}).get("tasks"):
        return []
    return [f"results/eval/{enc}/{ds}/{MLLM_LLM}/{regime}/{variant}.json"
            for regime in MLLM_REGIMES for variant in ("lmms_eval", "lmms_eval_blind")]


def eval_report_targets():
    if not MLLM_REGIMES:
        return []
    return ["results/metrics/eval.json", "results/claims.md", "results/metrics/claims.json"]


def in_report(paths, category, caption):
    """Mark the PNG figures and CSV tables among ``paths`` for `snakemake --report` (PDF, markdown and
    LaTeX copies stay plain outputs)."""
    marked = []
    for p in paths:  # (a line may not start with `report(`: Snakemake reads that as its directive)
        shown = p.endswith((".png", ".csv"))
        marked.append(report(p, caption=f"../report/{caption}.rst", category=category) if shown else p)
    return marked


# Resources per rule, from the config's `resources` section (workflow/schemas): `default`, then
# `rules.<rule>`. threads, mem_mb and runtime (minutes) size local and cluster jobs; gpu > 0 makes a
# SLURM job ask for GPUs (--gpus) and, with the local-gpu profile's `resources: gpu=N`, stops Snakemake
# from starting more GPU jobs at once than there are GPUs.
RESOURCE_DEFAULTS = {"threads": 1, "mem_mb": 2000, "runtime": 60, "gpu": 0, "nodes": 1}


def resources_of(rule):
    spec = config.get("resources", {})
    return {**RESOURCE_DEFAULTS, **spec.get("default", {}), **spec.get("rules", {}).get(rule, {})}


def rule_threads(rule):
    return resources_of(rule)["threads"]


def rule_resources(rule):
    res = {k: v for k, v in resources_of(rule).items() if k != "threads"}
    if res["nodes"] == 1:
        del res["nodes"]  # one node is every executor's default
        return res
    # Several nodes (MLLM training, modgap.mllm.launch), as the SLURM executor plugin reads them: `mpi`
    # makes the jobstep run the rule's command in the batch step, where the launcher's own srun starts
    # one task per node; tasks = nodes for that srun (tasks_per_gpu 0 keeps the plugin from turning
    # `tasks` into --ntasks-per-gpu); GPUs as per-node GRES, since `gpu` would be --gpus, the job total.
    gpus = res.pop("gpu")
    res.update(mpi="srun", tasks=res["nodes"], tasks_per_gpu=0)
    if gpus:
        res["gres"] = f"gpu:{gpus}"
    return res
