# Alignment: every configured method is fitted on the unpaired stats split only, transforms the texts
# of the configured splits into substitutes, and is diagnosed on the held-out paired diag split.


rule align_method:
    input:
        stats_meta="results/embeddings/{enc}/{ds}/stats/meta.json",
        diag_meta="results/embeddings/{enc}/{ds}/diag/meta.json",
        split_meta=lambda wc: [f"results/embeddings/{wc.enc}/{wc.ds}/{s}/meta.json" for s in ALIGN_SPLITS],
        code=src_files("align", "stats"),
    output:
        state="results/align/{enc}/{ds}/{method}/state.safetensors",
        state_json="results/align/{enc}/{ds}/{method}/state.json",
        substitutes=expand("results/align/{{enc}}/{{ds}}/{{method}}/substitutes/{split}.npy", split=ALIGN_SPLITS),
        diagnostics="results/align/{enc}/{ds}/{method}/diagnostics.json",
        # wall-clock times only (they differ between identical runs); no metric or claim reads them
        timing="results/align/{enc}/{ds}/{method}/timing.json",
    params:
        method_params=lambda wc: as_json(config["align"]["methods"][wc.method]),
        splits=ALIGN_SPLITS,
        seed=config["seed"],
    threads: rule_threads("align_method")
    resources:
        **rule_resources("align_method"),
    conda:
        "../envs/modgap.yaml"
    log:
        "logs/align/{enc}/{ds}/{method}.log",
    shell:
        "modgap align run --method {wildcards.method:q} --params {params.method_params:q}"
        " --stats-dir results/embeddings/{wildcards.enc:q}/{wildcards.ds:q}/stats"
        " --splits-root results/embeddings/{wildcards.enc:q}/{wildcards.ds:q} --splits {params.splits:q}"
        " --diag-dir results/embeddings/{wildcards.enc:q}/{wildcards.ds:q}/diag"
        " --out-dir results/align/{wildcards.enc:q}/{wildcards.ds:q}/{wildcards.method:q}"
        " --seed {params.seed:q} > {log:q} 2>&1"


rule align_study:
    input:
        stats_meta="results/embeddings/{enc}/{ds}/stats/meta.json",
        diag_meta="results/embeddings/{enc}/{ds}/diag/meta.json",
        code=src_files("align", "stats"),
    output:
        "results/align/{enc}/{ds}/_studies/{study}.json",
    params:
        command=lambda wc: STUDY_COMMANDS[wc.study],
        options=lambda wc: study_options(wc.study),
    threads: rule_threads("align_study")
    resources:
        **rule_resources("align_study"),
    conda:
        "../envs/modgap.yaml"
    log:
        "logs/align/{enc}/{ds}/study_{study}.log",
    shell:
        "modgap align {params.command:q} --stats-dir results/embeddings/{wildcards.enc:q}/{wildcards.ds:q}/stats"
        " --diag-dir results/embeddings/{wildcards.enc:q}/{wildcards.ds:q}/diag"
        " --out {output:q} {params.options} > {log:q} 2>&1"


rule align_report:
    input:
        diagnostics=lambda wc: expand(
            "results/align/{enc}/{ds}/{method}/diagnostics.json", enc=wc.enc, ds=wc.ds, method=ALIGN_METHODS
        ),
        studies=lambda wc: expand("results/align/{enc}/{ds}/_studies/{study}.json", enc=wc.enc, ds=wc.ds,
                                  study=ALIGN_STUDIES),
        code=src_files("align", "output"),
    output:
        tables=in_report(
            multiext("results/tables/align/{enc}/{ds}/align_", "metrics.md", "metrics.csv", "gap.md", "params.md"),
            "Alignment", "align_tables",
        ),
        figures=in_report(
            expand("results/figures/align/{{enc}}/{{ds}}/{stem}.{ext}", stem=ALIGN_FIGURES, ext=("png", "pdf")),
            "Alignment", "align_figures",
        ),
        metrics="results/metrics/align/{enc}/{ds}.json",
    threads: rule_threads("align_report")
    resources:
        **rule_resources("align_report"),
    conda:
        "../envs/modgap.yaml"
    log:
        "logs/align/{enc}/{ds}/report.log",
    shell:
        "modgap align report --inputs results/align/{wildcards.enc:q}/{wildcards.ds:q}"
        " --tables-dir results/tables/align/{wildcards.enc:q}/{wildcards.ds:q}"
        " --figures-dir results/figures/align/{wildcards.enc:q}/{wildcards.ds:q}"
        " --metrics {output.metrics:q} > {log:q} 2>&1"
