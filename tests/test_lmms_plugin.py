"""The lmms-eval model plugin end to end on CPU: entry-point discovery, a local task written from a fake
held-out split, lmms-eval's evaluator driving a tiny untrained stage folder, and teacher-forced
log-likelihoods checked against the training loss. Skipped where lmms-eval (the ``eval`` extra) is absent."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

# datasets reads these at import time; the local task must never reach the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

pytest.importorskip("lmms_eval")

import numpy as np
import pandas as pd
import torch
from PIL import Image

from modgap.embed.encoder import load_encoder
from modgap.embed.tiny import TINY_MODEL, save_tiny_checkpoint
from modgap.evaluation.lmms_plugin import ModgapMLLM, cut_at_stops
from modgap.evaluation.lmms_tasks import write_local_task
from modgap.mllm.config import load_config
from modgap.mllm.generate import generate, load_mllm
from modgap.mllm.testing import make_fake_inputs, make_tiny_llm, tiny_config
from modgap.mllm.train import train_stage

torch.set_num_threads(1)
SUITE = {"pope_items": 2, "choice_items": 1, "choices": 2}  # 6 yes/no items + 2 rotations of one question


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("lmms")
    checkpoint = save_tiny_checkpoint(root / "encoder.pt")
    paths = make_fake_inputs(root / "data", n_train=16, n_test=4, dim=16)  # the tiny encoder's width
    cfg = load_config(tiny_config(make_tiny_llm(root / "llm"), max_steps=1))
    stage = root / "stage2"  # one step from random init: untrained, but a complete stage folder
    train_stage(cfg, 2, out_dir=stage, init_from="none", **paths)
    # Real images for the test split (one with transparency), then the local task over them.
    manifest = pd.read_parquet(paths["manifest"])
    (root / "img").mkdir()
    image_paths = []
    for k, row in enumerate(manifest.itertuples()):
        mode, colour = ("RGBA", (200, 30, 30, 120)) if k % 2 else ("RGB", (20 * (k % 12), 90, 160))
        path = root / "img" / f"{row.id}.png"
        Image.new(mode, (40, 32), colour).save(path)
        image_paths.append(f"img/{path.name}")
    manifest["image_path"] = image_paths
    manifest.to_parquet(root / "manifest.parquet")
    summary = write_local_task(root / "manifest.parquet", root / "task", SUITE, root=root)
    model_args = f"stage_dir={stage},encoder={TINY_MODEL},pretrained={checkpoint}"
    return SimpleNamespace(
        root=root, stage=stage, checkpoint=checkpoint, task=root / "task", summary=summary, model_args=model_args
    )


def test_write_local_task_files(env: SimpleNamespace, tmp_path: Path) -> None:
    pope = [json.loads(line) for line in (env.task / "data" / "pope.jsonl").read_text().splitlines()]
    choice = [json.loads(line) for line in (env.task / "data" / "choice.jsonl").read_text().splitlines()]
    assert [r["variant"] for r in pope] == ["positive", "random", "popular"] * 2
    assert [r["answer"] for r in pope] == ["Yes", "No", "No"] * 2
    assert len(choice) == 2 and {r["answer"] for r in choice} <= {"A", "B"} and len(choice[0]["options"]) == 2
    assert all(Path(r["image_path"]).is_absolute() and Path(r["image_path"]).is_file() for r in pope + choice)
    yaml_text = (env.task / "modgap_pope_local.yaml").read_text()
    assert f'"{(env.task / "data").resolve().as_posix()}/pope.jsonl"' in yaml_text and "__DATA_DIR__" not in yaml_text
    assert env.summary["tasks"]["modgap_pope_local"]["items"] == 6
    # No multiple-choice items: its task (and its group entry) is left out rather than written empty.
    only_pope = write_local_task(env.root / "manifest.parquet", tmp_path, {**SUITE, "choice_items": 0}, root=env.root)
    assert set(only_pope["tasks"]) == {"modgap_pope_local"} and not (tmp_path / "modgap_choice_local.yaml").exists()
    assert "modgap_choice_local" not in (tmp_path / "modgap_local.yaml").read_text()


def test_entry_point_resolves_the_model() -> None:
    from lmms_eval import models

    assert "modgap" in models.list_available_models(), (
        "the lmms_eval.models entry point is missing: reinstall modgap (pip install -e '.[eval]')"
    )
    assert models.get_model("modgap") is ModgapMLLM


def test_simple_evaluate_end_to_end(env: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import TaskManager

    monkeypatch.setenv("LMMS_EVAL_DATASETS_CACHE", str(tmp_path / "datasets"))  # keep the user's HF cache clean
    tasks = ["modgap_pope_local", "modgap_choice_local"]
    out = simple_evaluate(
        model="modgap",
        model_args=env.model_args,
        tasks=tasks,
        batch_size=4,
        device="cpu",
        task_manager=TaskManager(include_path=str(env.task), include_defaults=False),
        log_samples=True,
        bootstrap_iters=0,
        random_seed=0,
        numpy_random_seed=0,
        torch_random_seed=0,
        fewshot_random_seed=0,
        datetime_str="test",
    )
    assert "ModgapMLLM" in out["config"]["model_backend"]
    pope, choice = out["results"]["modgap_pope_local"], out["results"]["modgap_choice_local"]
    for key in ("pope_accuracy,none", "pope_f1,none", "pope_random_accuracy,none", "pope_popular_accuracy,none"):
        assert 0.0 <= pope[key] <= 1.0
    assert np.isnan(pope["pope_adversarial_accuracy,none"])  # not built: no label embeddings
    assert 0.0 <= choice["choice_accuracy,none"] <= 1.0 and 0.0 <= choice["choice_circular_accuracy,none"] <= 1.0
    samples = out["samples"]["modgap_pope_local"]
    assert len(samples) == 6 and len(out["samples"]["modgap_choice_local"]) == 2

    # The plugin's answers are the project's own decoder on the pipeline's own image embeddings.
    docs = [json.loads(line) for line in (env.task / "data" / "pope.jsonl").read_text().splitlines()]
    mllm = load_mllm(env.stage)
    encoder = load_encoder(TINY_MODEL, str(env.checkpoint), device="cpu")
    emb = encoder.encode_images([d["image_path"] for d in docs], progress=False)
    expected = generate(mllm, emb, [d["question"] for d in docs], max_new_tokens=16)
    got = {s["doc_id"]: s["filtered_resps"] for s in samples}
    got = [g[0] if isinstance(g, list) else g for g in (got[i] for i in range(len(docs)))]
    assert got == [cut_at_stops(t, ["\n\n"]) for t in expected]
    # The per-sample metric records carry the parsed prediction next to the truth.
    assert {s["pope_f1"]["truth"] for s in samples} == {"yes", "no"}


def _instance(args: tuple) -> object:
    from lmms_eval.api.instance import Instance

    return Instance(
        request_type="loglikelihood", arguments=args, idx=0, metadata={"task": "t", "doc_id": args[3], "repeats": 1}
    )


def test_loglikelihood_matches_training_loss(env: SimpleNamespace) -> None:
    from modgap.mllm.data import Collator, encode_prompt, prompt_text

    lm = ModgapMLLM(
        stage_dir=str(env.stage), encoder=TINY_MODEL, pretrained=str(env.checkpoint), device="cpu", batch_size=3
    )
    docs = [
        {"image": Image.new("RGB", (32, 32), (255, 0, 0))},
        {"image": Image.new("RGB", (32, 32), (0, 0, 255))},
        {"image": None},
    ]
    lm.task_dict = {"t": {"test": docs}}
    visual = lambda doc: [doc["image"]] if doc["image"] is not None else []  # noqa: E731
    cases = [
        ("Is there a cat? Reply with yes or no.", "Yes", 0),
        ("Name the object.", "a red dog", 1),
        ("Describe the image briefly.", "a cat", 2),
        ("Name the object.", "", 0),
    ]
    reqs = [_instance((q, cont, visual, i, "t", "test")) for q, cont, i in cases]
    batched = lm.loglikelihood(reqs)
    single = [lm.loglikelihood([r])[0] for r in reqs]
    assert np.allclose([b[0] for b in batched], [s[0] for s in single], atol=1e-4)
    assert [b[1] for b in batched] == [s[1] for s in single] and batched[3] == (0.0, True)

    # Reference: the training forward (answer-only labels, summed CE) on the same embeddings.
    mllm, tok = lm.mllm, lm.mllm.tokenizer
    for (q, cont, i), (logprob, _) in zip(cases[:3], batched[:3], strict=True):
        image = docs[i]["image"]
        ids, mask = encode_prompt(tok, prompt_text(tok, mllm.template, q, None, image is not None), mllm.num_visual)
        target = tok(cont, add_special_tokens=False)["input_ids"]
        emb = lm.embed_images([image])[0] if image is not None else np.zeros(16, np.float32)
        batch = Collator(tok.pad_token_id)(
            [
                {
                    "input_ids": ids + target,
                    "labels": [-100] * len(ids) + target,
                    "image_mask": mask + [False] * len(target),
                    "embeddings": torch.from_numpy(emb),
                }
            ]
        )
        with torch.no_grad():
            loss_sum = float(mllm.model(**batch)["loss_sum"])
        assert logprob == pytest.approx(-loss_sum, rel=1e-4, abs=1e-4)

    # is_greedy: the argmax next token is greedy, any other token is not.
    q = "Name the object."
    ids, mask = encode_prompt(tok, prompt_text(tok, mllm.template, q, None, True), mllm.num_visual)
    with torch.no_grad():
        emb = torch.from_numpy(lm.embed_images([docs[0]["image"]]))
        embeds = mllm.model.embed_inputs(torch.tensor([ids]), torch.tensor([mask]), emb)
        ranked = mllm.model.llm(inputs_embeds=embeds).logits[0, -1].argsort(descending=True).tolist()
    # Decoded tokens must re-encode to themselves for the string round trip to mean the same token.
    roundtrip = [t for t in ranked if tok(tok.decode([t]), add_special_tokens=False)["input_ids"] == [t]]
    best, other = tok.decode([ranked[0]]), tok.decode([roundtrip[-1]])
    assert roundtrip[0] == ranked[0], "the argmax token does not survive decode/encode in this tiny vocabulary"
    flags = [r[1] for r in lm.loglikelihood([_instance((q, c, visual, 0, "t", "test")) for c in (best, other)])]
    assert flags == [True, False]


def test_helpers() -> None:
    assert cut_at_stops("Yes\n\nNo", ["\n\n"]) == "Yes" and cut_at_stops("A. cat", ["", "."]) == "A"
    assert cut_at_stops("no stop", []) == "no stop"
    with pytest.raises(NotImplementedError):
        ModgapMLLM.generate_until_multi_round(object.__new__(ModgapMLLM), [])  # type: ignore[arg-type]


def test_cli_runs_lmms_eval_into_fixed_paths(
    env: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modgap.cli import main

    monkeypatch.setenv("LMMS_EVAL_DATASETS_CACHE", str(tmp_path / "datasets"))
    prefix = tmp_path / "lmms_eval_blind"
    args = [
        "eval",
        "lmms",
        "--model-dir",
        str(env.stage),
        "--encoder-model",
        TINY_MODEL,
        "--encoder-pretrained",
        str(env.checkpoint),
        "--tasks",
        "modgap_pope_local",
        "--include-path",
        str(env.task),
        "--batch-size",
        "4",
        "--blind",
        "--out-prefix",
        str(prefix),
    ]
    assert main(args) == 0
    record = json.loads(Path(f"{prefix}.json").read_text())
    assert record["blind"] is True and record["harness"]["lmms_eval"].startswith("0.7")
    assert 0.0 <= record["results"]["modgap_pope_local"]["pope_accuracy,none"] <= 1.0
    assert len(Path(f"{prefix}.samples.jsonl").read_text().splitlines()) == 6
