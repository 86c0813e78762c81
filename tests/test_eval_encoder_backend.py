"""Evaluation loads its encoder through the backend registry: the suite's label similarity and the
lmms-eval plugin take the extraction's backend and options (llm2clip on the tiny remote-code model
pair of tests/_llm2clip_fixture.py, offline); open_clip stays the default and keeps its commands."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tiny models are local folders; never reach the Hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np
import pytest
import yaml

from _eval_fixtures import manifest
from _llm2clip_fixture import make_tiny_llm2clip
from modgap.embed import backends
from modgap.embed.backends import create_encoder
from modgap.embed.spec import eval_backend_args
from modgap.errors import ConfigError
from modgap.evaluation.commands import _label_similarity

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LABELS = ["dog", "hot dog", "cat", "traffic light", "car"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    built = make_tiny_llm2clip(tmp_path_factory.mktemp("llm2clip") / "model")
    encoder = create_encoder("llm2clip", built["model"], None, "cpu", options=built["options"])
    return {**built, "encoder": encoder}


def test_label_similarity_uses_the_llm2clip_backend(tiny):
    similarity = _label_similarity(tiny["model"], None, "llm2clip", tiny["options"])
    rows = tiny["encoder"].encode_texts(LABELS, progress=False)
    got = similarity(LABELS[0], LABELS[1:])
    np.testing.assert_allclose(got, rows[1:] @ rows[0], atol=1e-6)
    assert not np.allclose(got, got[0])  # a real text space, not a constant


def test_label_similarity_defaults_to_open_clip(monkeypatch):
    calls = []

    class Fake:
        embed_dim = 2

        def encode_texts(self, texts, progress=False):
            return np.array([[1.0, 0.0] if t == "a" else [0.6, 0.8] for t in texts], np.float32)

    def fake_open_clip(model, pretrained, device, precision, num_workers, **options):
        calls.append((model, pretrained, device, precision, num_workers, options))
        return Fake()

    monkeypatch.setitem(backends._BACKENDS, "open_clip", fake_open_clip)
    similarity = _label_similarity("ViT-B-32", "openai")
    np.testing.assert_allclose(similarity("a", ["b", "a"]), [0.6, 1.0], rtol=1e-6)
    # what load_encoder(model, pretrained, device="cpu") got before the registry: fp32, no workers, no options
    assert calls == [("ViT-B-32", "openai", "cpu", "fp32", 0, {})]


def test_suite_cli_passes_backend_and_options(tiny, tmp_path):
    from modgap.cli import main

    path = tmp_path / "manifest.parquet"
    manifest().to_parquet(path)
    out = tmp_path / "suite.jsonl"
    argv = ["eval", "suite", "--manifest", str(path), "--out", str(out), "--encoder-model", tiny["model"]]
    argv += ["--params", json.dumps({"caption_items": 2, "pope_items": 4, "choice_items": 2})]
    assert main([*argv, "--encoder-backend", "llm2clip", "--encoder-backend-options", json.dumps(tiny["options"])]) == 0
    items = [json.loads(line) for line in out.read_text().splitlines()]
    assert sum(i["variant"] == "adversarial" for i in items) == 4
    assert main([*argv, "--encoder-backend", "llm2clip", "--encoder-backend-options", "[1]"]) != 0
    assert main([*argv, "--encoder-backend", "nope"]) != 0


def test_rule_arguments_only_for_encoders_with_an_hf_section():
    from modgap.cli import build_parser

    assert eval_backend_args({"model": "ViT-L-14-336", "pretrained": "openai"}) == ""
    assert eval_backend_args({"backend": "open_clip", "model": "m", "pretrained": "p", "hf": {}}) == ""
    config = yaml.safe_load((PROJECT_ROOT / "config/paper/aa-table1.yaml").read_text())
    (spec,) = config["encoders"].values()
    extra = shlex.split(eval_backend_args(spec))
    base = ["--manifest", "m.parquet", "--out", "s.jsonl", "--encoder-model", spec["model"]]
    for sub, more in (("suite", []), ("lmms", ["--model-dir", "d", "--tasks", "pope", "--out-prefix", "p"])):
        args = build_parser().parse_args(["eval", sub, *base[4:], *more, *extra, *(base[:4] if sub == "suite" else [])])
        assert args.encoder_backend == "llm2clip" and json.loads(args.encoder_backend_options) == spec["hf"]
        default = build_parser().parse_args(["eval", sub, *base[4:], *more, *(base[:4] if sub == "suite" else [])])
        assert default.encoder_backend == "open_clip" and default.encoder_backend_options is None


def test_model_arg_round_trips_through_lmms_eval_parsing():
    pytest.importorskip("lmms_eval")
    from lmms_eval.utils import simple_parse_args_string

    from modgap.evaluation.lmms_plugin import decode_model_arg, encode_model_arg

    options = {"text_model": "/x/it's, here", "text_prefix": '<|a|>\n"q", {b}', "embed_dim": 16}
    encoded = encode_model_arg(options)
    args = simple_parse_args_string(f"stage_dir=/s,encoder=m,backend=llm2clip,backend_options={encoded}")
    assert args["encoder"] == "m" and decode_model_arg(args["backend_options"]) == options
    assert decode_model_arg('{"a": 1}') == {"a": 1} and decode_model_arg("") is None
    with pytest.raises(ConfigError, match="backend_options"):
        decode_model_arg("b64:!!!")
    with pytest.raises(ConfigError, match="JSON object"):
        decode_model_arg("[1]")


def test_lmms_plugin_embeds_task_images_with_the_llm2clip_backend(tiny, tmp_path):
    pytest.importorskip("lmms_eval")
    from PIL import Image

    from modgap.evaluation.lmms_plugin import ModgapMLLM, encode_model_arg
    from modgap.mllm.config import load_config
    from modgap.mllm.testing import make_fake_inputs, make_tiny_llm, tiny_config
    from modgap.mllm.train import train_stage

    paths = make_fake_inputs(tmp_path / "data", n_train=8, n_test=2, dim=16)  # the tiny llm2clip width
    cfg = load_config(tiny_config(make_tiny_llm(tmp_path / "llm"), max_steps=1))
    train_stage(cfg, 2, out_dir=tmp_path / "stage2", init_from="none", **paths)
    model = ModgapMLLM(
        stage_dir=str(tmp_path / "stage2"),
        encoder=tiny["model"],
        backend="llm2clip",
        backend_options=encode_model_arg(tiny["options"]),
        device="cpu",
    )
    assert model.get_model_info()["encoder"]["backend"] == "llm2clip"
    files = []
    for k, (mode, colour) in enumerate((("RGB", (200, 30, 30)), ("RGBA", (20, 90, 160, 100)))):
        files.append(tmp_path / f"im{k}.png")
        Image.new(mode, (44, 36), colour).save(files[-1])
    images = [Image.open(f) for f in files]
    # the task's in-memory images get exactly the embeddings the extraction stage writes for the files
    np.testing.assert_allclose(
        model.embed_images(images), tiny["encoder"].encode_images(files, progress=False), atol=1e-6
    )
    wide = make_tiny_llm2clip(tmp_path / "wide", dim=12)
    with pytest.raises(ConfigError, match=r"embeds in 12 dims, the stage .* was trained on 16"):
        ModgapMLLM(
            stage_dir=str(tmp_path / "stage2"),
            encoder=wide["model"],
            backend="llm2clip",
            backend_options=json.dumps(wide["options"]),
            device="cpu",
        )


def test_eval_lmms_cli_runs_lmms_eval_with_the_llm2clip_backend(tiny, tmp_path, monkeypatch):
    """`modgap eval lmms --encoder-backend llm2clip`: the options cross lmms-eval's model_args parsing and
    every answer is the decoder's on the llm2clip embeddings of the task's images."""
    pytest.importorskip("lmms_eval")
    import pandas as pd
    from PIL import Image

    from modgap.cli import main
    from modgap.evaluation.lmms_plugin import cut_at_stops
    from modgap.evaluation.lmms_tasks import write_local_task
    from modgap.mllm.config import load_config
    from modgap.mllm.generate import generate, load_mllm
    from modgap.mllm.testing import make_fake_inputs, make_tiny_llm, tiny_config
    from modgap.mllm.train import train_stage

    monkeypatch.setenv("LMMS_EVAL_DATASETS_CACHE", str(tmp_path / "datasets"))
    paths = make_fake_inputs(tmp_path / "data", n_train=8, n_test=4, dim=16)
    cfg = load_config(tiny_config(make_tiny_llm(tmp_path / "llm"), max_steps=1))
    train_stage(cfg, 2, out_dir=tmp_path / "stage2", init_from="none", **paths)
    frame = pd.read_parquet(paths["manifest"])
    (tmp_path / "img").mkdir()
    frame["image_path"] = [f"img/{row.id}.png" for row in frame.itertuples()]
    for k, rel in enumerate(frame["image_path"]):
        Image.new("RGB", (40, 32), (30 * k, 90, 160)).save(tmp_path / rel)
    frame.to_parquet(tmp_path / "manifest.parquet")
    write_local_task(
        tmp_path / "manifest.parquet", tmp_path / "task", {"pope_items": 2, "choice_items": 0}, root=tmp_path
    )
    prefix = tmp_path / "lmms_eval"
    argv = ["eval", "lmms", "--model-dir", str(tmp_path / "stage2"), "--encoder-model", tiny["model"]]
    argv += ["--encoder-backend", "llm2clip", "--encoder-backend-options", json.dumps(tiny["options"])]
    argv += ["--tasks", "modgap_pope_local", "--include-path", str(tmp_path / "task"), "--batch-size", "4"]
    assert main([*argv, "--out-prefix", str(prefix)]) == 0
    record = json.loads(Path(f"{prefix}.json").read_text())
    assert "backend=llm2clip,backend_options=b64:" in record["config"]["model_args"]
    samples = [json.loads(line) for line in Path(f"{prefix}.samples.jsonl").read_text().splitlines()]
    docs = [json.loads(line) for line in (tmp_path / "task" / "data" / "pope.jsonl").read_text().splitlines()]
    emb = tiny["encoder"].encode_images([d["image_path"] for d in docs], progress=False)
    expected = generate(load_mllm(tmp_path / "stage2"), emb, [d["question"] for d in docs], max_new_tokens=16)
    got = {s["doc_id"]: s["filtered_resps"] for s in samples}
    got = [g[0] if isinstance(g, list) else g for g in (got[i] for i in range(len(docs)))]
    assert len(docs) == 6 and got == [cut_at_stops(t, ["\n\n"]) for t in expected]
