# Data stage: fetch or read a dataset, verify every checksum, assign seeded disjoint splits.


rule prepare_dataset:
    input:
        code=src_files("data"),
    output:
        manifest="resources/datasets/{ds}/manifest.parquet",
        summary="resources/datasets/{ds}/summary.json",
    params:
        dataset=lambda wc: as_json(config["datasets"][wc.ds]),
        seed=config["seed"],
    threads: rule_threads("prepare_dataset")
    resources:
        **rule_resources("prepare_dataset"),
    conda:
        "../envs/modgap.yaml"
    log:
        "logs/data/{ds}.log",
    shell:
        "modgap data prepare --dataset-config {params.dataset:q} --seed {params.seed:q}"
        " --out {output.manifest:q} > {log:q} 2>&1"
