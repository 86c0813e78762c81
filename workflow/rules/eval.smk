# Evaluation: the embedded mini-benchmark suite from the held-out split, every trained model under
# each visual condition (greedy decoding, per-sample logs), then the papers' tables and the claims
# report from every metric the pipeline wrote.


from modgap.embed.spec import eval_backend_args


rule eval_suite:
    input:
        manifest="resources/datasets/{ds}/manifest.parquet",
        checkpoint=trained_checkpoint_input,
        code=src_files("embed") + EVAL_RUN_SOURCES,
    output:
        suite="results/eval/{enc}/{ds}/suite.jsonl",
    params:
        suite=as_json(EVAL["suite"]),
        model=lambda wc: config["encoders"][wc.enc]["model"],
        pretrained=lambda wc: encoder_checkpoint(wc.enc),
        # the extraction's backend and its options, only for encoders with an `hf` section (llm2clip)
        backend=lambda wc: eval_backend_args(config["encoders"][wc.enc]),
    threads: rule_threads("eval_suite")
    resources:
        **rule_resources("eval_suite"),
    conda:
        "../envs/modgap.yaml"
    log:
        "logs/eval/{enc}/{ds}/suite.log",
    shell:
        "modgap eval suite --manifest {input.manifest:q} --params {params.suite:q}"
        " --encoder-model {params.model:q} --encoder-pretrained {params.pretrained:q}{params.backend}"
        " --out {output.suite:q} > {log:q} 2>&1"


rule eval_model:
    input:
        suite="results/eval/{enc}/{ds}/suite.jsonl",
        done=lambda wc: f"{eval_model_dir(wc)}/DONE.json",
        images=lambda wc: embedding_files(wc.enc, wc.ds, EVAL["suite"]["split"])["meta"],
        code=src_files("mllm") + EVAL_RUN_SOURCES,
    output:
        scores="results/eval/{enc}/{ds}/{llm}/{model}/{condition}.json",
        samples="results/eval/{enc}/{ds}/{llm}/{model}/{condition}.jsonl",
    params:
        model_dir=eval_model_dir,
        kind=lambda wc: "base-llm" if wc.model == "base-llm" else "mllm",
        tasks=eval_tasks,
        split=EVAL["suite"]["split"],
        batch_size=EVAL.get("batch_size", 16),
        max_new_tokens=as_json(EVAL.get("max_new_tokens", {})),
        bootstrap=EVAL.get("bootstrap", 1000),
        seed=config["seed"],
    threads: rule_threads("eval_model")
    resources:
        **rule_resources("eval_model"),
    conda:
        "../envs/modgap.yaml"
    log:
        "logs/eval/{enc}/{ds}/{llm}/{model}_{condition}.log",
    shell:
        "modgap eval run --model-dir {params.model_dir:q} --kind {params.kind:q} --suite {input.suite:q}"
        " --tasks {params.tasks:q} --condition {wildcards.condition:q}"
        " --embeddings-root results/embeddings/{wildcards.enc:q}/{wildcards.ds:q} --split {params.split:q}"
        " --batch-size {params.batch_size:q} --max-new-tokens {params.max_new_tokens:q} --threads {threads}"
        " --bootstrap {params.bootstrap:q} --seed {params.seed:q}"
        " --out-prefix results/eval/{wildcards.enc:q}/{wildcards.ds:q}/{wildcards.llm:q}/{wildcards.model:q}/{wildcards.condition:q}"
        " > {log:q} 2>&1"


rule eval_lmms:
    input:
        done="results/mllm/{enc}/{ds}/{llm}/{regime}/stage2/DONE.json",
        checkpoint=trained_checkpoint_input,
        code=src_files("mllm", "evaluation"),
    output:
        results="results/eval/{enc}/{ds}/{llm}/{regime}/{variant}.json",
        samples="results/eval/{enc}/{ds}/{llm}/{regime}/{variant}.samples.jsonl",
    wildcard_constraints:
        variant="lmms_eval|lmms_eval_blind",
    params:
        model=lambda wc: config["encoders"][wc.enc]["model"],
        pretrained=lambda wc: encoder_checkpoint(wc.enc),
        backend=lambda wc: eval_backend_args(config["encoders"][wc.enc]),
        tasks=",".join(EVAL.get("lmms_eval", {}).get("tasks", [])),
        limit=lambda wc: f"--limit {int(EVAL['lmms_eval']['limit'])}" if EVAL.get("lmms_eval", {}).get("limit") else "",
        blind=lambda wc: "--blind" if wc.variant.endswith("blind") else "",
        batch_size=EVAL.get("lmms_eval", {}).get("batch_size", 16),
        device=EVAL.get("lmms_eval", {}).get("device", "cpu"),
        seed=config["seed"],
    threads: rule_threads("eval_lmms")
    resources:
        **rule_resources("eval_lmms"),
    conda:
        "../envs/modgap.yaml"
    log:
        "logs/eval/{enc}/{ds}/{llm}/{regime}_{variant}.log",
    shell:
        "modgap eval lmms --model-dir results/mllm/{wildcards.enc:q}/{wildcards.ds:q}/{wildcards.llm:q}/{wildcards.regime:q}/stage2"
        " --encoder-model {params.model:q} --encoder-pretrained {params.pretrained:q}{params.backend} --tasks {params.tasks:q}"
        " {params.limit} {params.blind} --batch-size {params.batch_size:q} --device {params.device:q} --seed {params.seed:q}"
        " --out-prefix results/eval/{wildcards.enc:q}/{wildcards.ds:q}/{wildcards.llm:q}/{wildcards.regime:q}/{wildcards.variant:q}"
        " > {log:q} 2>&1"


rule eval_report:
    input:
        scores=[f for enc, ds in RUNS for f in eval_score_files(enc, ds)],
        lmms=[f for enc, ds in RUNS for f in lmms_eval_files(enc, ds)],
        align=align_targets(),
        code=src_files("evaluation", "output"),
    output:
        metrics="results/metrics/eval.json",
        tables=report(
            directory("results/tables/eval"),
            patterns=["{path}.csv"],
            caption="../report/eval_tables.rst",
            category="Evaluation",
        ),
        figure=report(
            "results/figures/eval_summary.png",
            caption="../report/eval_summary.rst",
            category="Evaluation",
        ),
        figure_pdf="results/figures/eval_summary.pdf",
    params:
        runs=as_json([{"encoder": e, "dataset": d} for e, d in RUNS]),
        regimes=as_json(MLLM_REGIMES),
        llm=MLLM_LLM,
    threads: rule_threads("eval_report")
    resources:
        **rule_resources("eval_report"),
    conda:
        "../envs/modgap.yaml"
    log:
        "logs/eval/report.log",
    shell:
        "modgap eval report --runs {params.runs:q} --regimes {params.regimes:q} --llm {params.llm:q}"
        " --eval-root results/eval --align-metrics-root results/metrics/align"
        " --metrics-out {output.metrics:q} --tables-dir {output.tables:q}"
        " --figure-prefix results/figures/eval_summary > {log:q} 2>&1"


rule claims:
    input:
        gap="results/metrics/gap.json",
        encoder="results/metrics/encoder.json",
        align=align_targets(),
        eval="results/metrics/eval.json",
        # the nulls and bootstrap intervals are recomputed from the diag embeddings and substitutes
        diag=[f"results/embeddings/{e}/{d}/diag/meta.json" for e, d in RUNS],
        spectra=[f"results/gap/{e}/{d}/spectra.npz" for e, d in RUNS],
        substitutes=[f"results/align/{e}/{d}/{m}/substitutes/diag.npy" for e, d in RUNS for m in ALIGN_METHODS
                     if "diag" in ALIGN_SPLITS],
        code=src_files("evaluation", "align", "gap", "stats"),
    output:
        markdown=report("results/claims.md", caption="../report/claims.rst", category="Claims"),
        metrics="results/metrics/claims.json",
    params:
        runs=as_json([{"encoder": e, "dataset": d} for e, d in RUNS]),
        tier=config["report"]["tier"],
    threads: rule_threads("claims")
    resources:
        **rule_resources("claims"),
    conda:
        "../envs/modgap.yaml"
    log:
        "logs/eval/claims.log",
    shell:
        "modgap eval claims --runs {params.runs:q} --tier {params.tier:q} --gap {input.gap:q}"
        " --encoder {input.encoder:q} --align-metrics-root results/metrics/align --eval {input.eval:q}"
        " --embeddings-root results/embeddings --align-root results/align --gap-root results/gap"
        " --markdown-out {output.markdown:q} --metrics-out {output.metrics:q} > {log:q} 2>&1"
