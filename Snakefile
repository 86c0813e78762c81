# modgap: data -> embeddings -> gap statistics -> alignment -> MLLM -> evaluation -> tables/figures.
# The only entry point. `snakemake` with no arguments runs the embedded tier (workflow/profiles/default);
# `snakemake --configfile config/paper/<setting>.yaml --profile workflow/profiles/<profile>` the paper tier.

from modgap.config import validate_config


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


validate_config(config, workflow.source_path("workflow/schemas/config.schema.yaml"))


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/encoder.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/gap.smk"
include: "workflow/rules/align.smk"
include: "workflow/rules/mllm.smk"
include: "workflow/rules/eval.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_targets(),
    default_target: True
