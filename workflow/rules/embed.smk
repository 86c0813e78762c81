# Embedding extraction: L2-normalised image and text embeddings per split (resumable, deterministic).


rule extract_embeddings:
    input:
        manifest="resources/datasets/{ds}/manifest.parquet",
        checkpoint=trained_checkpoint_input,
        code=src_files("embed"),
    output:
        **embedding_files("{enc}", "{ds}", "{split}"),
    params:
        model=lambda wc: config["encoders"][wc.enc]["model"],
        pretrained=lambda wc: encoder_checkpoint(wc.enc),
        batch_size=config["embed"]["batch_size"],
        device=config["embed"]["device"],
        precision=config["embed"]["precision"],
        shard_rows=config["embed"]["shard_rows"],
    conda:
        "../envs/modgap.yaml"
    log:
        "logs/embed/{enc}/{ds}/{split}.log",
    shell:
        "modgap embed extract --manifest {input.manifest} --split {wildcards.split}"
        " --model {params.model} --pretrained {params.pretrained:q}"
        " --out-dir results/embeddings/{wildcards.enc}/{wildcards.ds}/{wildcards.split}"
        " --batch-size {params.batch_size} --device {params.device} --precision {params.precision}"
        " --shard-rows {params.shard_rows} > {log} 2>&1"
