# Encoder stage: LiT-style training of the projection heads of a project-built open_clip model
# (towers locked). Paper-tier encoders with a pretrained tag skip this rule.


rule train_encoder:
    input:
        manifest=lambda wc: (
            f"resources/datasets/{config['encoders'][wc.enc]['train']['dataset']}/manifest.parquet"
        ),
        code=src_files("embed"),
    output:
        checkpoint="results/encoders/{enc}/open_clip.pt",
        summary="results/encoders/{enc}/train.json",
        metrics="results/encoders/{enc}/diag_metrics.json",
    params:
        train=lambda wc: as_json(lit_params(wc.enc)),
    threads: rule_threads("train_encoder")
    resources:
        **rule_resources("train_encoder"),
    conda:
        "../envs/modgap.yaml"
    log:
        "logs/encoder/{enc}.log",
    shell:
        "modgap embed encoder-train --manifest {input.manifest:q}"
        " --params {params.train:q} --out-dir results/encoders/{wildcards.enc:q}"
        " --metrics-out {output.metrics:q} > {log:q} 2>&1"
