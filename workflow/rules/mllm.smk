# ReVision MLLM training. Stage 1 (projector only, LLM frozen) on text substitutes of one alignment
# method or on real image embeddings; stage 2 (visual instruction tuning) on real image embeddings,
# or on substitutes for the fully text-only variant. Runs resume from their last complete checkpoint.


rule mllm_stage1:
    input:
        manifest="resources/datasets/{ds}/manifest.parquet",
        train_meta="results/embeddings/{enc}/{ds}/train/meta.json",
        substitutes=lambda wc: substitutes_input(wc, wc.source),
        code=src_files("mllm"),
    output:
        done="results/mllm/{enc}/{ds}/{llm}/stage1/{source}/DONE.json",
    params:
        preset=config["mllm"]["preset"],
        launcher=mllm_launcher("mllm_stage1"),
        llm=lambda wc: as_json(wc.llm),
        visual=lambda wc: visual_args(wc, wc.source),
    threads: rule_threads("mllm_stage1")
    resources:
        **rule_resources("mllm_stage1"),
    conda:
        "../envs/modgap.yaml"
    log:
        "logs/mllm/{enc}/{ds}/{llm}/stage1_{source}.log",
    shell:
        "{params.launcher} mllm train --stage 1 --config {params.preset:q} --set llm.source={params.llm:q}"
        " --manifest {input.manifest:q} --embeddings-root results/embeddings/{wildcards.enc:q}/{wildcards.ds:q}"
        " {params.visual} --out-dir results/mllm/{wildcards.enc:q}/{wildcards.ds:q}/{wildcards.llm:q}/stage1/{wildcards.source:q}"
        " > {log:q} 2>&1"


rule mllm_stage2:
    input:
        manifest="resources/datasets/{ds}/manifest.parquet",
        train_meta="results/embeddings/{enc}/{ds}/train/meta.json",
        stage1=stage1_input,
        substitutes=lambda wc: substitutes_input(wc, config["mllm"]["regimes"][wc.regime]["stage2"]),
        code=src_files("mllm"),
    output:
        done="results/mllm/{enc}/{ds}/{llm}/{regime}/stage2/DONE.json",
    params:
        preset=config["mllm"]["preset"],
        launcher=mllm_launcher("mllm_stage2"),
        llm=lambda wc: as_json(wc.llm),
        visual=lambda wc: visual_args(wc, config["mllm"]["regimes"][wc.regime]["stage2"]),
        init_from=lambda wc, input: os.path.dirname(input.stage1[0]) if input.stage1 else "none",
    threads: rule_threads("mllm_stage2")
    resources:
        **rule_resources("mllm_stage2"),
    conda:
        "../envs/modgap.yaml"
    log:
        "logs/mllm/{enc}/{ds}/{llm}/{regime}_stage2.log",
    shell:
        "{params.launcher} mllm train --stage 2 --config {params.preset:q} --set llm.source={params.llm:q}"
        " --manifest {input.manifest:q} --embeddings-root results/embeddings/{wildcards.enc:q}/{wildcards.ds:q}"
        " {params.visual} --init-from {params.init_from:q}"
        " --out-dir results/mllm/{wildcards.enc:q}/{wildcards.ds:q}/{wildcards.llm:q}/{wildcards.regime:q}/stage2"
        " > {log:q} 2>&1"
