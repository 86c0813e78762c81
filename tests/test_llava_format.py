"""LLaVA-format loaders (InternVL SFT, Bunny-pretrain captions, Unicorn) and the pinned Hub snapshot fetch,
on fixtures built here; the Hub is an offline HF cache folder (snapshot_download with local_files_only)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from modgap.data.hub_snapshot import HubSnapshot, fetch_snapshot, parse_snapshot
from modgap.data.llava_format import (
    Caption,
    Conversation,
    LlavaFormatError,
    Turn,
    load_bunny_captions,
    load_conversations,
    load_text_conversations,
)
from modgap.data.paper_data import load_source, parse_source
from modgap.errors import ChecksumError, ConfigError, DownloadError

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "someone/tiny-sft"


def conv(rid, image=None, *turns):
    turns = turns or ("<image>\nWhat is shown?", "A dog.")
    rec = {"id": rid, "conversations": [{"from": ("human", "gpt")[k % 2], "value": v} for k, v in enumerate(turns)]}
    if image is not None:
        rec["image"] = image
    return rec


def write(path: Path, records, jsonl=False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in records) if jsonl else json.dumps(records)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def roots(tmp_path):
    coco, gqa = tmp_path / "coco", tmp_path / "gqa"
    (coco / "train2017").mkdir(parents=True)
    (gqa / "images").mkdir(parents=True)
    (coco / "train2017" / "1.jpg").write_bytes(b"jpg1")
    (gqa / "images" / "2.jpg").write_bytes(b"jpg2")
    return [coco, gqa]


def test_conversations_resolve_images_across_roots(tmp_path, roots):
    a = write(tmp_path / "a.json", [conv(1, "train2017/1.jpg"), conv("t", None, "Hi", "Hello", "Why?", "Because.")])
    b = write(tmp_path / "b.jsonl", [conv("g2", "images/2.jpg")], jsonl=True)
    got = load_conversations([a, b], roots)
    assert [c.id for c in got] == ["1", "t", "g2"]  # ids are str(id), as the authors compare them
    assert got[0] == Conversation(
        "1", (Turn("human", "<image>\nWhat is shown?"), Turn("gpt", "A dog.")), roots[0] / "train2017/1.jpg", a
    )
    assert got[1].image is None and len(got[1].turns) == 4 and not got[1].has_image_token
    assert got[2].image == roots[1] / "images/2.jpg" and got[2].source == b


def test_missing_image_names_file_record_and_roots(tmp_path, roots):
    a = write(tmp_path / "a.json", [conv(1, "train2017/1.jpg"), conv(7, "train2017/404.jpg")])
    with pytest.raises(LlavaFormatError) as err:
        load_conversations([a], roots)
    message = str(err.value)
    assert str(a) in message and "record '7'" in message and "train2017/404.jpg" in message
    assert str(roots[0]) in message and str(roots[1]) in message
    with pytest.raises(LlavaFormatError, match="no image roots are configured"):
        load_conversations([a], [])


def test_duplicate_and_missing_ids_fail(tmp_path, roots):
    a = write(tmp_path / "a.json", [conv(5, "train2017/1.jpg")])
    b = write(tmp_path / "b.json", [conv("5", "images/2.jpg")])
    with pytest.raises(LlavaFormatError, match=rf"{b}: record 0: duplicate id '5' \(also in {a}\)"):
        load_conversations([a, b], roots)
    per_file = load_conversations([a, b], roots, ids_per_file=True)  # files that each number their records
    assert [c.id for c in per_file] == ["a.json:5", "b.json:5"]
    c = write(tmp_path / "c.json", [conv(1), conv(1)])
    with pytest.raises(LlavaFormatError, match=r"duplicate id '1' \(earlier in this file"):
        load_text_conversations([c])
    d = write(tmp_path / "d.json", [conv(1), {"conversations": conv(2)["conversations"]}])
    with pytest.raises(LlavaFormatError, match=rf"{d}: record 1 has no usable 'id'"):
        load_text_conversations([d])


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (conv(1, None, "q"), "last turn is not a gpt answer"),
        (conv(1, None, "q", "a", "q2", "a2", "q3"), "last turn is not a gpt answer"),
        ({"id": 1, "conversations": [{"from": "gpt", "value": "a"}]}, "turn 0 must be"),
        ({"id": 1, "conversations": []}, "non-empty list"),
        (conv(1, ["train2017/1.jpg", "images/2.jpg"]), "'image' must be one relative path"),
        (conv(1, "train2017/1.jpg", "<image> <image>", "a"), "2 '<image>' tokens"),
    ],
)
def test_malformed_records_are_named(tmp_path, roots, record, message):
    path = write(tmp_path / "bad.json", [record])
    with pytest.raises(LlavaFormatError, match=message) as err:
        load_conversations([path], roots)
    assert str(path) in str(err.value)


def test_bad_files_are_named(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(LlavaFormatError, match=r"x\.json: not JSON"):
        load_text_conversations([tmp_path / "x.json"])
    (tmp_path / "y.jsonl").write_text('{"id": 1}\n[oops\n')
    with pytest.raises(LlavaFormatError, match=r"y\.jsonl: line 2 is not JSON"):
        load_text_conversations([tmp_path / "y.jsonl"])
    write(tmp_path / "z.json", {"id": 1})
    with pytest.raises(LlavaFormatError, match="expected a JSON list"):
        load_text_conversations([tmp_path / "z.json"])


def test_bunny_captions(tmp_path, roots):
    path = write(
        tmp_path / "bunny_pretrain.json",
        [
            conv("b1", "train2017/1.jpg", "<image>\n", "  a dog on grass \n"),
            conv("b2", "images/2.jpg", "<image>", "a cat"),
        ],
    )
    got = load_bunny_captions([path])
    assert got[0] == Caption("b1", "a dog on grass", "train2017/1.jpg", None, path)
    with_images = load_bunny_captions([path], roots)
    assert [c.image for c in with_images] == [roots[0] / "train2017/1.jpg", roots[1] / "images/2.jpg"]
    for bad, message in (
        (conv("x", "i.jpg", "<image>\nDescribe it.", "a dog"), "not a caption record"),
        (conv("x", "i.jpg", "a dog", "a dog"), "not a caption record"),
        (conv("x", "i.jpg", "<image>", "q", "a", "b"), "not a caption record"),
        (conv("x", "i.jpg", "<image>", "   "), "empty caption"),
    ):
        with pytest.raises(LlavaFormatError, match=message):
            load_bunny_captions([write(tmp_path / "bad.json", [bad])])
    with pytest.raises(LlavaFormatError, match=r"record 'b1': image 'train2017/1\.jpg' is in none"):
        load_bunny_captions([path], [roots[1]])


def test_unicorn_text_conversations(tmp_path):
    path = write(
        tmp_path / "unicorn.json", [conv(1, None, "<image>\nDescribe.", "A red bus."), conv(2, None, "Q", "A")]
    )
    got = load_text_conversations([path])
    assert [c.image for c in got] == [None, None] and got[0].has_image_token and got[1].turns[1].value == "A"
    with pytest.raises(
        LlavaFormatError, match=r"record '3' names image 'coco/3\.jpg', but this dataset is read as text-only"
    ):
        load_text_conversations([write(tmp_path / "u2.json", [conv(3, "coco/3.jpg")])])


# --- Hub snapshot at a pinned commit ---------------------------------------------------------------


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hub_cache(tmp_path: Path, files: dict[str, bytes], commit: str = COMMIT) -> Path:
    """An HF cache holding one dataset snapshot, laid out as huggingface_hub writes it."""
    cache = tmp_path / "hf-cache"
    snap = cache / f"datasets--{REPO.replace('/', '--')}" / "snapshots" / commit
    for name, data in files.items():
        (snap / name).parent.mkdir(parents=True, exist_ok=True)
        (snap / name).write_bytes(data)
    return cache


def test_snapshot_config_errors_name_the_key():
    good = {"repo_id": REPO, "revision": COMMIT, "files": {"a.json": "0" * 64}}
    assert parse_snapshot(good, "d.hub") == HubSnapshot(REPO, COMMIT, {"a.json": "0" * 64})
    for change, message in (
        ({"revision": "main"}, r"d\.hub\.revision: 'main' is not a 40-hex commit"),
        ({"repo_id": "noslash"}, r"d\.hub\.repo_id"),
        ({"files": {}}, r"d\.hub\.files: expected a non-empty mapping"),
        ({"files": {"a.json": "abc"}}, r"d\.hub\.files\.a\.json: 'abc' is not a 64-hex sha256"),
        ({"files": {"../a.json": "0" * 64}}, r"d\.hub\.files: '\.\./a\.json' is not a relative path"),
        ({"branch": "x"}, r"d\.hub: unknown key\(s\) \['branch'\]"),
    ):
        with pytest.raises(ConfigError, match=message):
            parse_snapshot({**good, **change}, "d.hub")


def test_fetch_snapshot_offline_verifies_checksums(tmp_path):
    data = json.dumps([conv(1)]).encode()
    cache = hub_cache(tmp_path, {"sft/a.json": data, "other.bin": b"x"})
    snap = HubSnapshot(REPO, COMMIT, {"sft/a.json": sha(data)})
    folder = fetch_snapshot(snap, cache_dir=cache, local_files_only=True)
    assert folder.name == COMMIT and (folder / "sft/a.json").read_bytes() == data
    altered = HubSnapshot(REPO, COMMIT, {"sft/a.json": sha(b"other"), "sft/b.json": sha(b"")})
    with pytest.raises(ChecksumError) as err:
        fetch_snapshot(altered, cache_dir=cache, local_files_only=True)
    assert f"{REPO}@{COMMIT}" in str(err.value) and "sft/a.json (sha256 " in str(err.value)
    assert "sft/b.json (missing)" in str(err.value)
    other = HubSnapshot(REPO, "f" * 40, snap.files)  # another commit is not served from this one's files
    with pytest.raises(DownloadError, match=f"hf dataset {REPO}@{'f' * 40}: snapshot download failed"):
        fetch_snapshot(other, cache_dir=cache, local_files_only=True)


def test_paper_data_source_end_to_end(tmp_path, roots):
    sft = json.dumps([conv("s1", "train2017/1.jpg"), conv("s2", "images/2.jpg")]).encode()
    unicorn = (json.dumps(conv("u1")) + "\n").encode()
    cache = hub_cache(tmp_path, {"sft.json": sft, "unicorn.jsonl": unicorn, "README.md": b"r"})
    hub = {"repo_id": REPO, "revision": COMMIT, "files": {"sft.json": sha(sft), "README.md": sha(b"r")}}
    source = parse_source(
        {"format": "conversations", "hub": hub, "image_roots": ["coco", "gqa"]}, "paper_data.sft", base=tmp_path
    )
    assert source.json_files == ["sft.json"] and source.image_roots == tuple(roots)
    got = load_source(source, cache_dir=cache, local_files_only=True)
    assert [c.image for c in got] == [roots[0] / "train2017/1.jpg", roots[1] / "images/2.jpg"]
    scoped = parse_source(
        {"format": "conversations", "hub": hub, "image_roots": ["coco", "gqa"], "ids_per_file": True}, "p", tmp_path
    )
    assert [c.id for c in load_source(scoped, cache_dir=cache, local_files_only=True)] == ["sft.json:s1", "sft.json:s2"]
    text = parse_source(
        {"format": "text_conversations", "hub": {**hub, "files": {"unicorn.jsonl": sha(unicorn)}}}, "paper_data.u"
    )
    assert [c.id for c in load_source(text, cache_dir=cache, local_files_only=True)] == ["u1"]
    for cfg, message in (
        ({"format": "llava", "hub": hub}, r"paper_data\.x\.format: 'llava' is not one of"),
        ({"format": "text_conversations", "hub": hub, "image_roots": ["coco"]}, r"paper_data\.x\.image_roots"),
        ({"format": "conversations", "hub": {**hub, "files": {"README.md": sha(b"r")}}}, r"paper_data\.x\.hub\.files"),
        ({"format": "conversations", "hub": hub, "roots": []}, r"paper_data\.x: unknown key"),
        ({"format": "conversations", "hub": hub, "ids_per_file": "yes"}, r"paper_data\.x\.ids_per_file"),
    ):
        with pytest.raises(ConfigError, match=message):
            parse_source(cfg, "paper_data.x")


def test_fetch_snapshot_over_a_loopback_hub_downloads_only_the_named_files(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from _hub_http import serve_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # other test modules set it at import
    data = json.dumps([conv(1)]).encode()
    with serve_hub(REPO, COMMIT, {"sft/a.json": data, "sft/b.json": b"[]", "images.tar": b"big"}) as hub:
        snap = HubSnapshot(REPO, COMMIT, {"sft/a.json": sha(data)})
        folder = fetch_snapshot(snap, cache_dir=tmp_path / "cache", endpoint=hub.endpoint)
        assert hub.fetched() == ["sft/a.json"] and (folder / "sft/a.json").read_bytes() == data
        assert [c.id for c in load_text_conversations([folder / "sft/a.json"])] == ["1"]
        tampered = HubSnapshot(REPO, COMMIT, {"sft/b.json": sha(b"[ ]")})
        with pytest.raises(ChecksumError, match=r"sft/b\.json \(sha256 "):
            fetch_snapshot(tampered, cache_dir=tmp_path / "cache", endpoint=hub.endpoint)
        assert hub.fetched() == ["sft/a.json", "sft/b.json"]  # never images.tar
        with pytest.raises(DownloadError, match=f"{REPO}@{'e' * 40}"):
            fetch_snapshot(HubSnapshot(REPO, "e" * 40, snap.files), cache_dir=tmp_path / "c2", endpoint=hub.endpoint)
    # the first download is now served from the cache with the network off
    assert fetch_snapshot(snap, cache_dir=tmp_path / "cache", local_files_only=True) == folder


def test_paper_data_cli_prints_a_summary_and_names_failures(tmp_path, roots, capsys):
    from modgap.cli import main

    sft = json.dumps([conv("s1", "train2017/1.jpg"), conv("s2", None, "Hi", "Hello")]).encode()
    cache = hub_cache(tmp_path, {"sft.json": sft})
    cfg = {
        "format": "conversations",
        "hub": {"repo_id": REPO, "revision": COMMIT, "files": {"sft.json": sha(sft)}},
        "image_roots": ["coco", "gqa"],
    }
    argv = ["data", "paper-data", "--base", str(tmp_path), "--cache-dir", str(cache), "--offline"]
    assert main([*argv, "--source", json.dumps(cfg)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {
        "format": "conversations",
        "pin": f"{REPO}@{COMMIT}",
        "records": 2,
        "with_image": 1,
        "per_file": {"sft.json": 2},
    }
    assert main([*argv, "--source", json.dumps({**cfg, "image_roots": ["gqa"]})]) == 2
    err = capsys.readouterr().err
    assert "record 's1': image 'train2017/1.jpg' is in none of the image roots" in err and "sft.json" in err
