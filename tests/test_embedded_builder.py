"""Embedded dataset builder: fake source trees (no apt/npm needed) and the committed manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from modgap.data import embedded_builder as eb

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "data" / "embedded"

SVG = """<svg xmlns="http://www.w3.org/2000/svg" xmlns:dc="http://purl.org/dc/elements/1.1/"
 xmlns:cc="http://web.resource.org/cc/" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
 width="40" height="20"><metadata><rdf:RDF><cc:Work rdf:about="">
 <dc:title>{title}</dc:title><dc:description>{desc}</dc:description>
 </cc:Work></rdf:RDF></metadata><rect x="2" y="2" width="30" height="10" fill="#c00"/></svg>"""


def _png(path: Path, color: tuple[int, int, int, int], size: tuple[int, int] = (60, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGBA", size, (0, 0, 0, 0))
    img.paste(color, (5, 5, size[0] - 5, size[1] - 5))
    img.save(path)


def _deb_root(root: Path, package: str, version: str) -> None:
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(f"Package: {package}\nVersion: {version}\n")
    doc = root / "usr/share/doc" / package
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(f"{package} licence notice\n")


@pytest.fixture()
def sources(tmp_path: Path) -> dict[str, Path]:
    tux = tmp_path / "tux"
    _deb_root(tux, "tuxpaint-stamps-default", "2022.06.04-1")
    birds = tux / eb.TUXPAINT_STAMPS / "animals" / "birds"
    _png(birds / "robin.png", (200, 60, 20, 255))
    (birds / "robin.txt").write_text("A robin on a branch.\nfr.utf8=Un rouge-gorge.\n")
    _png(birds / "nodesc.png", (0, 0, 200, 255))  # no .txt: not an item

    clip = tmp_path / "clip"
    _deb_root(clip, "openclipart-svg", "1:0.18+dfsg-19")
    svg_dir = clip / eb.OPENCLIPART_SVG / "food"
    svg_dir.mkdir(parents=True)
    titles = {"red_apple_01": "Red Apple", "img": "image123", "pear": "Untitled", "leaf": "camelCaseLeaf"}
    for name, title in titles.items():
        (svg_dir / f"{name}.svg").write_text(SVG.format(title=title, desc=""))
    (svg_dir / "orange.svg").write_text(SVG.format(title="untitled", desc="A juicy orange. Drawn in 2005."))

    emoji = tmp_path / "emoji"
    (emoji / eb.EMOJI_IMAGES).mkdir(parents=True)
    _png(emoji / eb.EMOJI_IMAGES / "1f600.png", (250, 200, 0, 255), (64, 64))
    entries = [
        {"name": "GRINNING FACE", "short_name": "grinning", "image": "1f600.png", "category": "Smileys & Emotion",
         "subcategory": "face-smiling", "has_img_google": True},
        {"name": "EMOJI MODIFIER FITZPATRICK TYPE-1-2", "short_name": "skin-tone-2", "image": "1f600.png",
         "category": "Component", "subcategory": "skin-tone", "has_img_google": True},
    ]  # fmt: skip
    (emoji / "emoji.json").write_text(json.dumps(entries))
    (emoji / "package.json").write_text(json.dumps({"name": "emoji-datasource-google", "version": "16.0.0"}))
    (emoji / "LICENSE").write_text("MIT\n")
    return {"tuxpaint_root": tux, "openclipart_root": clip, "emoji_root": emoji}


@pytest.mark.parametrize(
    "title",
    ["image123", "red_apple_01", "camelCaseLeaf", "Untitled", "untitled drawing", "x", "Pulsante 03",
     "Clipart by Nicu Buculei - pear", "café “garçon” 北京", "drawing.svg", ""],
)  # fmt: skip
def test_rejected_titles(title: str) -> None:
    assert eb.reject_reason(title, is_title=True) is not None


@pytest.mark.parametrize("title", ["Red Apple", "Saturn", "Flag of the (Second) Spanish Republic", "Cup"])
def test_kept_titles(title: str) -> None:
    assert eb.reject_reason(title, is_title=True) is None


def test_english_check_uses_vocabulary() -> None:
    vocab = frozenset({"red", "apple", "cup"})
    assert eb.reject_reason("Mela rossa", is_title=True, vocabulary=vocab) == "not-english"
    assert eb.reject_reason("Red apple", is_title=True, vocabulary=vocab) is None


def test_sentences_keep_numbers_and_quotes() -> None:
    assert eb.reject_reason("A US “Sacagawea” dollar ($1.00).", is_title=False) is None
    assert eb.normalize_text("A “quoted” word — café") == 'A "quoted" word - cafe'


def test_discovery_and_captions(sources: dict[str, Path]) -> None:
    items = eb.discover_all(**sources, seed=0)
    ids = {it.id for it in items}
    assert "tuxpaint-animals-birds-robin" in ids and "tuxpaint-animals-birds-nodesc" not in ids
    assert "emoji-grinning" in ids and "emoji-skin-tone-2" not in ids
    kept, rejected = eb.select_captions(items, seed=0)
    captions = {it.id: it.caption for it in kept}
    assert captions["tuxpaint-animals-birds-robin"] == "A robin on a branch."
    assert "Red Apple" in captions["openclipart-food-red-apple-01"]
    assert "grinning face" in captions["emoji-grinning"]
    assert "A juicy orange" in captions["openclipart-food-orange"]  # description replaces a bad title
    assert {"openclipart-food-img", "openclipart-food-pear", "openclipart-food-leaf"}.isdisjoint(captions)
    assert sum(rejected.values()) == 3
    labels = {it.id: it.labels for it in kept}
    assert labels["tuxpaint-animals-birds-robin"] == ("animals", "animals/birds")


def test_colliding_ids_get_hash_suffix(sources: dict[str, Path]) -> None:
    item = eb.discover_all(emoji_root=sources["emoji_root"])[0]
    a, b = eb.unique_ids([item, eb.replace(item, key="other")])
    assert a.id != b.id and a.id.startswith(item.id + "-")
    assert eb.unique_ids([item])[0].id == item.id


def test_template_choice_is_deterministic() -> None:
    choices = {eb.choose_template(f"x-{i}", eb.EMOJI_TEMPLATES, seed=1) for i in range(50)}
    assert len(choices) > 1
    assert eb.choose_template("x-1", eb.EMOJI_TEMPLATES, 1) == eb.choose_template("x-1", eb.EMOJI_TEMPLATES, 1)


def test_to_jpeg_white_square() -> None:
    img = Image.new("RGBA", (100, 50), (0, 0, 0, 0))
    img.paste((255, 0, 0, 255), (10, 10, 50, 30))
    data = eb.to_jpeg(img)
    out = Image.open(__import__("io").BytesIO(data))
    assert out.format == "JPEG" and out.size == (eb.IMAGE_SIZE, eb.IMAGE_SIZE) and out.mode == "RGB"
    assert min(out.getpixel((0, 0))) > 245  # transparent margin became white
    assert data == eb.to_jpeg(img)


def _build(sources: dict[str, Path], out: Path) -> pd.DataFrame:
    pytest.importorskip("cairosvg")
    kept, _ = eb.select_captions(eb.discover_all(**sources, seed=0), seed=0)
    return eb.build_dataset(kept, out)


def test_build_manifest_and_determinism(sources: dict[str, Path], tmp_path: Path) -> None:
    manifest = _build(sources, tmp_path / "a")
    _build(sources, tmp_path / "b")
    assert tuple(manifest.columns) == eb.MANIFEST_COLUMNS
    assert manifest["id"].is_monotonic_increasing
    for row in manifest.itertuples():
        data = (tmp_path / "a" / row.file).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row.sha256
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert (tmp_path / "a" / "LICENSES" / "openclipart-svg.copyright").is_file()
    reread = eb.read_manifest(tmp_path / "a" / "manifest.csv")
    pd.testing.assert_frame_equal(reread, manifest)


def test_rebuild_removes_stale_images(sources: dict[str, Path], tmp_path: Path) -> None:
    stale = tmp_path / "out" / "images" / "old-item.jpg"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"x")
    _build(sources, tmp_path / "out")
    assert not stale.exists()


def test_committed_manifest() -> None:
    manifest = eb.read_manifest(COMMITTED / "manifest.csv")
    assert tuple(manifest.columns) == eb.MANIFEST_COLUMNS
    assert len(manifest) >= 5000
    assert manifest["id"].is_unique
    assert (manifest["caption"].str.strip() != "").all()
    assert (manifest["labels"] != "").all()
    for row in manifest.itertuples():
        path = COMMITTED / row.file
        assert path.is_file(), path
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row.sha256, path
