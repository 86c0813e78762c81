# Embedding extraction: L2-normalised image and text embeddings per split (resumable, deterministic).


from modgap.embed.spec import backend_options_arg


rule extract_embeddings:
    input:
        manifest="resources/datasets/{ds}/manifest.parquet",
        checkpoint=trained_checkpoint_input,
        code=src_files("embed"),
    output:
        **embedding_files("{enc}", "{ds}", "{split}"),
    params:
        backend=lambda wc: config["encoders"][wc.enc].get("backend", "open_clip"),
        # backend-specific settings (llm2clip: encoders.<name>.hf) as one JSON argument, only when set
        backend_options=lambda wc: backend_options_arg(config["encoders"][wc.enc]),
        model=lambda wc: config["encoders"][wc.enc]["model"],
        pretrained=lambda wc: encoder_checkpoint(wc.enc),
        batch_size=config["embed"]["batch_size"],
        device=config["embed"]["device"],
        precision=config["embed"]["precision"],
        shard_rows=config["embed"]["shard_rows"],
    threads: rule_threads("extract_embeddings")
    resources:
        **rule_resources("extract_embeddings"),
    conda:
        "../envs/modgap.yaml"
    log:
        "logs/embed/{enc}/{ds}/{split}.log",
    shell:
        "modgap embed extract --manifest {input.manifest:q} --split {wildcards.split:q}"
        " --backend {params.backend:q}{params.backend_options} --model {params.model:q} --pretrained {params.pretrained:q}"
        " --out-dir results/embeddings/{wildcards.enc:q}/{wildcards.ds:q}/{wildcards.split:q}"
        " --batch-size {params.batch_size:q} --device {params.device:q} --precision {params.precision:q}"
        " --shard-rows {params.shard_rows:q} > {log:q} 2>&1"
