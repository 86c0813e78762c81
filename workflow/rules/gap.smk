# Gap-theory statistics (marginal, paired residual, fixed frame, diagnostic transforms), the gap
# dynamics study, and their figures, tables and metrics.


rule gap_stats:
    input:
        stats_meta="results/embeddings/{enc}/{ds}/stats/meta.json",
        diag_meta="results/embeddings/{enc}/{ds}/diag/meta.json",
        code=src_files("gap", "stats"),
    output:
        stats="results/gap/{enc}/{ds}/stats.json",
        spectra="results/gap/{enc}/{ds}/spectra.npz",
    params:
        gap=as_json(config["gap"]["params"]),
    threads: rule_threads("gap_stats")
    resources:
        **rule_resources("gap_stats"),
    conda:
        "../envs/modgap.yaml"
    log:
        "logs/gap/stats/{enc}/{ds}.log",
    shell:
        "modgap gap stats --stats-dir results/embeddings/{wildcards.enc:q}/{wildcards.ds:q}/stats"
        " --diag-dir results/embeddings/{wildcards.enc:q}/{wildcards.ds:q}/diag"
        " --out-dir results/gap/{wildcards.enc:q}/{wildcards.ds:q} --params {params.gap:q}"
        " --encoder {wildcards.enc:q} --dataset {wildcards.ds:q} > {log:q} 2>&1"


rule gap_dynamics:
    input:
        manifest="resources/datasets/{ds}/manifest.parquet",
        code=src_files("gap", "stats"),
    output:
        log_csv="results/gap/dynamics/{ds}/log.csv",
        arrays="results/gap/dynamics/{ds}/arrays.npz",
        summary="results/gap/dynamics/{ds}/summary.json",
    params:
        dynamics=as_json(config["gap"]["dynamics"]["params"]),
    threads: rule_threads("gap_dynamics")
    resources:
        **rule_resources("gap_dynamics"),
    conda:
        "../envs/modgap.yaml"
    log:
        "logs/gap/dynamics/{ds}.log",
    shell:
        "modgap gap dynamics --manifest {input.manifest:q} --out-dir results/gap/dynamics/{wildcards.ds:q}"
        " --params {params.dynamics:q} --dataset {wildcards.ds:q} > {log:q} 2>&1"


rule gap_report:
    input:
        stats=[f"results/gap/{enc}/{ds}/stats.json" for enc, ds in RUNS],
        dynamics=[f"results/gap/dynamics/{ds}/summary.json" for ds in DYNAMICS_DATASETS],
        code=src_files("gap", "output"),
    output:
        metrics="results/metrics/gap.json",
        tables=in_report(multiext("results/tables/gap_stats", ".md", ".csv", ".tex"), "Gap theory", "gap_tables"),
        transforms=in_report(
            multiext("results/tables/gap_transforms", ".md", ".csv", ".tex"), "Gap theory", "gap_tables"
        ),
        figures=in_report(gap_figures(), "Gap theory", "gap_figures"),
    params:
        runs=lambda wc, input: [os.path.dirname(p) for p in input.stats],
        dynamics=lambda wc, input: [os.path.dirname(p) for p in input.dynamics],
    threads: rule_threads("gap_report")
    resources:
        **rule_resources("gap_report"),
    conda:
        "../envs/modgap.yaml"
    log:
        "logs/gap/report.log",
    shell:
        "modgap gap report --runs {params.runs:q} --dynamics {params.dynamics:q}"
        " --figures-dir results/figures --tables-dir results/tables --metrics {output.metrics:q} > {log:q} 2>&1"
