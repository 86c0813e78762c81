# Reports: tables (markdown, CSV, LaTeX), figures (PNG + PDF) and DVC metrics.



rule encoder_report:
    input:
        diag=[embedding_files(enc, ds, "diag")["meta"] for enc, ds in RUNS],
        pca=[embedding_files(enc, ds, config["report"]["pca_split"])["meta"] for enc, ds in RUNS],
        code=src_files("report", "output", "embed"),
    output:
        metrics="results/metrics/encoder.json",
        table_md="results/tables/encoder.md",
        table_csv=report("results/tables/encoder.csv", caption="../report/encoder_table.rst", category="Encoder"),
        table_tex="results/tables/encoder.tex",
        pca_png=report(
            "results/figures/embedding_pca.png",
            caption="../report/embedding_pca.rst",
            category="Encoder",
        ),
        pca_pdf="results/figures/embedding_pca.pdf",
    params:
        runs=as_json([{"encoder": e, "dataset": d} for e, d in RUNS]),
        pca_split=config["report"]["pca_split"],
        seed=config["seed"],
    threads: rule_threads("encoder_report")
    resources:
        **rule_resources("encoder_report"),
    conda:
        "../envs/modgap.yaml"
    log:
        "logs/report/encoder.log",
    shell:
        "modgap report encoder --runs {params.runs:q} --embeddings-root results/embeddings"
        " --pca-split {params.pca_split:q} --seed {params.seed:q}"
        " --metrics-out {output.metrics:q} --tables-prefix results/tables/encoder"
        " --figure-prefix results/figures/embedding_pca > {log:q} 2>&1"


rule report_html:
    input:
        figures=html_report_figures(),
        tables=html_report_tables(),
        metrics=html_report_metrics(),
        code=src_files("report", "output"),
    output:
        "results/report.html",
    params:
        claims="--claims results/metrics/claims.json" if MLLM_REGIMES else "",
        title=f"modgap report: {config['report']['tier']} tier",
    threads: rule_threads("report_html")
    resources:
        **rule_resources("report_html"),
    conda:
        "../envs/modgap.yaml"
    log:
        "logs/report/html.log",
    shell:
        "modgap report html --title {params.title:q} --figures {input.figures:q} --tables {input.tables:q}"
        " --metrics {input.metrics:q} {params.claims} --out {output:q} > {log:q} 2>&1"
