"""Unit tests of modgap.mllm: projector/splice shapes, answer-only label masking, instructions,
config validation and input errors (all on a tiny random-init LLM, no network, no GGUF)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from modgap.errors import ConfigError, InvalidEmbeddingsError
from modgap.mllm.config import load_config, preset_names
from modgap.mllm.data import IGNORE_INDEX, Collator, MLLMInputError, encode_example, visual_table
from modgap.mllm.instructions import build_instructions, instructions_for_item
from modgap.mllm.model import Projector, VisualLM
from modgap.mllm.testing import make_fake_inputs, make_tiny_llm, tiny_config

torch.set_num_threads(1)  # tiny models: thread start-up costs more than it saves on a shared CPU


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mllm")
    llm = make_tiny_llm(root / "llm")
    return {"llm": llm, **make_fake_inputs(root / "data", n_train=32, n_test=8)}


@pytest.fixture(scope="module")
def llm_and_tok(tiny: dict[str, Path]):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny["llm"]), AutoTokenizer.from_pretrained(tiny["llm"])


@pytest.mark.parametrize("mode", ["repeat", "expand"])
def test_projector_shapes(mode: str) -> None:
    proj = Projector(256, 32, num_tokens=5, mode=mode)
    out = proj(torch.randn(3, 256))
    assert out.shape == (3, 5, 32)
    if mode == "repeat":  # the authors' N identical copies
        assert torch.equal(out[:, 0], out[:, 4])
    assert [m.__class__.__name__ for m in proj.mlp] == ["Linear", "GELU", "Linear"]


def test_splice_places_visual_tokens_at_mask(llm_and_tok) -> None:
    llm, _ = llm_and_tok
    model = VisualLM(llm, Projector(256, llm.config.hidden_size, 3))
    ids = torch.tensor([[5, 0, 0, 0, 7, 8], [5, 9, 0, 0, 0, 7]])
    mask = torch.tensor([[0, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 0]], dtype=torch.bool)
    emb = torch.randn(2, 256)
    out = model.embed_inputs(ids, mask, emb)
    visual = model.projector(emb)
    assert torch.allclose(out[0, 1:4], visual[0]) and torch.allclose(out[1, 2:5], visual[1])
    text = llm.get_input_embeddings()(ids)
    assert torch.equal(out[~mask], text[~mask])


@pytest.mark.parametrize("template", ["chat", "plain"])
def test_labels_cover_only_the_answer(llm_and_tok, template: str) -> None:
    _, tok = llm_and_tok
    enc = encode_example(
        tok,
        template,
        "Is there a cat in the image? Answer yes or no.",
        "Yes",
        num_visual=4,
        system_prompt=None,
        max_length=200,
    )
    assert len(enc.input_ids) == len(enc.labels) == len(enc.image_mask)
    assert sum(enc.image_mask) == 4
    answer_ids = [t for t in enc.labels if t != IGNORE_INDEX]
    first = enc.labels.index(answer_ids[0])
    assert all(t == IGNORE_INDEX for t in enc.labels[:first])  # prompt and visual positions masked
    assert enc.input_ids[first:] == answer_ids  # answer is the contiguous tail
    expected = "Yes<|im_end|>" if template == "chat" else "Yes\n"
    assert tok.decode(answer_ids) == expected


def test_loss_counts_only_answer_tokens(llm_and_tok) -> None:
    llm, tok = llm_and_tok
    torch.manual_seed(0)
    model = VisualLM(llm, Projector(256, llm.config.hidden_size, 2))
    batch = Collator(tok.pad_token_id)(
        [
            {
                **encode_example(tok, "chat", q, a, num_visual=2, system_prompt=None, max_length=200).__dict__,
                "embeddings": torch.randn(256),
            }
            for q, a in [("Describe the image briefly.", "a red cat"), ("Name the object.", "dog")]
        ]
    )
    out = model(**batch)
    # Reference: full logits through the HF model, standard shifted CE over label != -100.
    embeds = model.embed_inputs(batch["input_ids"], batch["image_mask"], batch["embeddings"])
    logits = llm(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).logits
    ref = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), batch["labels"][:, 1:].reshape(-1), reduction="sum"
    )
    assert int(out["n_tokens"]) == int((batch["labels"] != IGNORE_INDEX).sum())
    assert torch.allclose(out["loss_sum"], ref, rtol=1e-5)


def test_instructions_are_deterministic_and_consistent(tiny: dict[str, Path]) -> None:
    import pandas as pd

    manifest = pd.read_parquet(tiny["manifest"])
    a = build_instructions(manifest, split="train", seed=3)
    b = build_instructions(manifest, split="train", seed=3)
    assert a == b and {i.task for i in a} == {"caption", "yesno", "choice", "short"}
    labels = dict(zip(manifest["id"], manifest["labels"], strict=True))
    for ins in a:
        if ins.task == "choice":
            truth = ins.options["ABCD".index(ins.answer)]
            assert truth in labels[ins.id] and sum(o in labels[ins.id] for o in ins.options) == 1
            assert f"{ins.answer}. {truth}" in ins.question
        if ins.task == "yesno":
            assert (ins.answer == "Yes") == (ins.label in labels[ins.id])
    # An item's instructions do not depend on which other items are present (subsets stay stable).
    row = manifest.iloc[0]
    vocab = sorted({x for ls in manifest["labels"] for x in ls})
    alone = instructions_for_item(row["id"], row["caption"], list(row["labels"]), vocab, seed=3)
    assert alone == [i for i in a if i.id == row["id"]]
    test = build_instructions(manifest, split="test", phrasing="eval")
    assert {i.id for i in test}.isdisjoint({i.id for i in a})


def test_config_presets_and_errors() -> None:
    assert {"embedded", "paper-1gpu", "paper-8gpu"} <= set(preset_names())
    paper = load_config("paper-8gpu")
    assert (paper.stage1.lr, paper.stage2.lr, paper.visual_tokens) == (5e-4, 1e-5, 576)
    assert paper.stage1.per_device_batch_size * paper.stage1.grad_accum * 8 == 256
    one = load_config("paper-1gpu")
    assert one.stage2.per_device_batch_size * one.stage2.grad_accum == 256
    with pytest.raises(ConfigError, match="unknown key"):
        load_config({"stage1": {"learning_rate": 1.0}})
    with pytest.raises(ConfigError, match="finetune"):
        load_config({"stage2": {"finetune": "everything"}})
    with pytest.raises(ConfigError, match=r"stage1\.mixed_precision"):
        load_config({"stage1": {"mixed_precision": "int8"}})
    with pytest.raises(ConfigError, match=r"stage2\.projector_lr"):
        load_config({"stage2": {"projector_lr": 0.0}})
    with pytest.raises(ConfigError, match=r"instructions\.negatives"):
        load_config({"instructions": {"negatives": "popular"}})
    embedded = load_config("embedded")
    assert (embedded.stage2.finetune, embedded.instructions.negatives) == ("lora", "frequency")


def test_missing_or_nan_substitutes_stop_before_training(tiny: dict[str, Path], tmp_path: Path) -> None:
    from modgap.mllm.train import train_stage

    # An LLM source that cannot load: if training got that far, the error would be a ConfigError.
    cfg = load_config({**tiny_config(tiny["llm"]), "llm": {"source": str(tmp_path / "absent.gguf")}})
    paths = {"manifest": tiny["manifest"], "embeddings_root": tiny["embeddings_root"]}
    with pytest.raises(MLLMInputError, match=r"train\.npy does not exist"):
        train_stage(cfg, 1, out_dir=tmp_path / "a", substitutes=tmp_path / "nowhere", **paths)
    bad = np.load(tiny["substitutes"] / "train.npy")
    bad[5, 3] = np.nan
    np.save(tmp_path / "train.npy", bad)
    with pytest.raises(InvalidEmbeddingsError, match="NaN or Inf, first at row 5"):
        train_stage(cfg, 1, out_dir=tmp_path / "b", substitutes=tmp_path / "train.npy", **paths)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    with pytest.raises(MLLMInputError, match="rows but"):
        np.save(tmp_path / "short.npy", bad[:5])
        visual_table(
            "substitute", embeddings_root=tiny["embeddings_root"], split="train", substitutes=tmp_path / "short.npy"
        )


def test_cli_reports_bad_input_with_exit_2(tiny: dict[str, Path], tmp_path: Path, capsys) -> None:
    from modgap.cli import main

    assert main(["mllm", "config", "paper-8gpu"]) == 0
    assert json.loads(capsys.readouterr().out)["stage2"]["lr"] == 1e-5
    rc = main(
        [
            "mllm",
            "train",
            "--stage",
            "1",
            "--config",
            json.dumps(tiny_config(tiny["llm"])),
            "--manifest",
            str(tiny["manifest"]),
            "--embeddings-root",
            str(tiny["embeddings_root"]),
            "--substitutes",
            str(tmp_path / "missing"),
            "--out-dir",
            str(tmp_path / "out"),
        ]
    )
    assert rc == 2 and "does not exist" in capsys.readouterr().err
