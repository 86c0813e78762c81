"""Build the committed embedded dataset from registry-installable sources.

Three sources, each unpacked into its own root directory by ``scripts/build_embedded_dataset.sh``:

* Debian ``tuxpaint-stamps-default`` (GPL-2+): photo cut-outs and drawings; the first line of each
  stamp's ``.txt`` file is a human-written English description, used as the caption verbatim.
* Debian ``openclipart-svg`` (public domain): clip art whose SVG metadata carries a title
  (``dc:title``) and sometimes a description; a good title becomes a caption through a template.
* npm ``emoji-datasource-google`` (Noto emoji images, Apache-2.0): emoji names with categories.

Everything here is a pure function of the source trees and the seed, so two builds are
byte-identical: items are sorted by id, templates are chosen by a hash of (seed, id), and the JPEG
encoder settings are fixed. cairosvg is imported lazily so the default pipeline never needs it.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import logging
import re
import shutil
import unicodedata
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
from PIL import Image

from modgap.errors import ModgapError
from modgap.io import atomic_path, sha256_bytes, write_bytes_atomic

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = (
    "id",
    "file",
    "caption",
    "labels",
    "source_package",
    "source_version",
    "license",
    "sha256",
)
IMAGE_SIZE = 128
JPEG_QUALITY = 85
SVG_RENDER_WIDTH = 512  # rendered larger than the target so cropping to the drawing keeps detail

TUXPAINT_STAMPS = Path("usr/share/tuxpaint/stamps")
OPENCLIPART_SVG = Path("usr/share/openclipart/svg")
EMOJI_IMAGES = Path("img/google/64")
OPENMOJI_IMAGES = Path("color/svg")
OPENMOJI_SKINTONE_FRACTION = 0.4

# Caption templates, chosen per item by hash(seed, id) so the form varies but never changes between runs.
OPENCLIPART_TEMPLATES = (
    "a clip art drawing of {}",
    "{}, clip art",
    "an illustration of {}",
    "a vector drawing of {}",
    "clip art showing {}",
)
EMOJI_TEMPLATES = (
    "an emoji of {}",
    "{} emoji",
    "the {} emoji",
    "an emoji showing {}",
    "emoji: {}",
)

# Whole titles that name nothing in particular.
GENERIC_TITLES = frozenset(
    {
        "untitled",
        "image",
        "picture",
        "drawing",
        "clipart",
        "clip art",
        "icon",
        "icons",
        "new",
        "test",
        "draft",
        "unnamed",
        "noname",
        "no name",
        "none",
        "sample",
        "example",
        "various",
        "misc",
        "logo",
        "symbol",
        "shape",
        "graphic",
        "graphics",
        "design",
        "art",
        "object",
        "thing",
        "people",
        "card",
    }
)
# Prefixes of collection or tool boilerplate rather than descriptions.
GENERIC_PREFIXES = ("untitled", "clipart by", "part of", "svg ", "various", "new drawing", "layer")
COLLECTION_MIN_COUNT = 3  # a title shared by this many files of one source is a collection name
MAX_TITLE_WORDS = 12
MAX_SENTENCE_WORDS = 40
MIN_ENGLISH_FRACTION = 0.5

_PUNCTUATION = str.maketrans(
    {"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "–": "-", "—": "-", "…": "...", "€": "EUR"}
)
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")


@dataclass(frozen=True)
class SourceInfo:
    """Provenance shared by every item of one source package."""

    key: str  # short prefix of item ids
    package: str
    version: str
    license: str
    license_files: tuple[Path, ...] = ()  # notices shipped inside the package
    common_licenses: tuple[str, ...] = ()  # full texts referenced by the notices (/usr/share/common-licenses)


@dataclass(frozen=True)
class Item:
    """One candidate pair before filtering: where the image is and what the source says about it."""

    id: str
    image_path: Path
    text: str  # the source's own title or description
    labels: tuple[str, ...]
    source: SourceInfo
    templates: tuple[str, ...] = ()  # empty: the text is already a sentence and is used as is
    alt_text: str = ""  # fallback (openclipart description) when ``text`` is rejected
    key: str = ""  # stable source-relative key (path, codepoints) that disambiguates colliding ids
    caption: str = field(default="", compare=False)


# ---------------------------------------------------------------------------------------------------
# Text normalisation and the caption filter


def normalize_text(text: str) -> str:
    """HTML entities decoded, typographic punctuation to ASCII, accents dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", html.unescape(text)).translate(_PUNCTUATION)
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return " ".join(text.split())


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", normalize_text(text).lower()).strip("-")


def load_vocabulary(path: Path | None) -> frozenset[str] | None:
    """Lower-cased word list (e.g. Debian ``wamerican``); None disables the English check."""
    if path is None:
        return None
    words = path.read_text(encoding="utf-8", errors="replace").split()
    return frozenset(normalize_text(w).lower().removesuffix("'s") for w in words)


def reject_reason(text: str, *, is_title: bool, vocabulary: frozenset[str] | None = None) -> str | None:
    """Why ``text`` is not a usable description, or None if it is.

    Titles (turned into captions by a template) get the file-name checks and the English-vocabulary
    check; full sentences such as tuxpaint descriptions legitimately contain model numbers
    ("UB2006 research vessel") and are only checked for being empty, non-ASCII, URLs or too long.
    """
    clean = normalize_text(text)
    lowered = clean.lower()
    tokens = clean.split()
    words = _WORD.findall(clean)
    checks: list[tuple[str, bool]] = [
        ("empty", not words),
        ("non-ascii", not clean.isascii()),
        ("url", "http" in lowered or "www." in lowered),
        ("too-long", len(tokens) > (MAX_TITLE_WORDS if is_title else MAX_SENTENCE_WORDS)),
    ]
    if is_title:
        checks += [
            ("filename-like", "_" in clean or bool(re.search(r"\.(svg|png|jpe?g|gif)\b", lowered))),
            ("camelcase", any(re.search(r"[a-z][A-Z]", t) for t in tokens)),
            ("letters-and-digits", any(re.search(r"[A-Za-z]\d|\d[A-Za-z]", t) for t in tokens)),
            ("generic", lowered.strip(" .!-") in GENERIC_TITLES or lowered.startswith(GENERIC_PREFIXES)),
            ("too-short", len(tokens) == 1 and sum(c.isalpha() for c in clean) < 3),
            ("trailing-number", bool(tokens) and tokens[-1].strip("#.()").isdigit()),
            ("not-english", not _mostly_english(words, vocabulary)),
        ]
    return next((reason for reason, failed in checks if failed), None)


def _mostly_english(words: Sequence[str], vocabulary: frozenset[str] | None) -> bool:
    if vocabulary is None or not words:
        return True
    known = sum(w.lower().removesuffix("'s") in vocabulary for w in words)
    return known / len(words) >= MIN_ENGLISH_FRACTION


def choose_template(item_id: str, templates: Sequence[str], seed: int) -> str:
    """Deterministic, roughly uniform template choice from a hash of (seed, id)."""
    digest = hashlib.sha256(f"{seed}:{item_id}".encode()).digest()
    return templates[int.from_bytes(digest[:8], "big") % len(templates)]


def make_caption(item: Item, text: str, seed: int) -> str:
    text = normalize_text(text)
    if not item.templates:
        return text
    return choose_template(item.id, item.templates, seed).format(text)


def select_captions(
    items: Iterable[Item], seed: int, vocabulary: frozenset[str] | None = None
) -> tuple[list[Item], Counter[str]]:
    """Apply the caption filter to every item; returns kept items (with captions) and reject counts.

    Corpus-level rules: a title shared by >= COLLECTION_MIN_COUNT files of the same source is a
    collection name, and a caption text already used by an earlier id (sorted order) is a duplicate.
    """
    items = sorted(items, key=lambda it: it.id)
    title_counts = Counter((it.source.key, normalize_text(it.text).lower()) for it in items)
    kept: list[Item] = []
    rejected: Counter[str] = Counter()
    seen: set[str] = set()
    for item in items:
        text, reason = _pick_text(item, title_counts, vocabulary)
        if reason is None and normalize_text(text).lower() in seen:
            reason = "duplicate"
        if reason is not None:
            rejected[reason] += 1
            continue
        seen.add(normalize_text(text).lower())
        kept.append(replace(item, caption=make_caption(item, text, seed)))
    return kept, rejected


def _pick_text(
    item: Item, title_counts: Counter[tuple[str, str]], vocabulary: frozenset[str] | None
) -> tuple[str, str | None]:
    """The item's title if acceptable, else its description fallback; with the title's reject reason."""
    is_title = bool(item.templates)
    reason = reject_reason(item.text, is_title=is_title, vocabulary=vocabulary)
    count = title_counts[(item.source.key, normalize_text(item.text).lower())]
    if reason is None and is_title and count >= COLLECTION_MIN_COUNT:
        reason = "collection-title"
    if reason is None or not item.alt_text:
        return item.text, reason
    alt = first_sentence(item.alt_text)
    alt_reason = reject_reason(alt, is_title=False, vocabulary=None)
    if alt_reason is None and _mostly_english(_WORD.findall(alt), vocabulary):
        return alt, None
    return item.text, reason


def first_sentence(text: str) -> str:
    text = normalize_text(text)
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    return (match.group(1) if match else text).rstrip(".")


# ---------------------------------------------------------------------------------------------------
# Discovery: one function per source, each reading an unpacked package root


def read_deb_version(root: Path) -> str:
    """Version from ``DEBIAN/control`` (written by ``dpkg-deb -e`` next to the unpacked files)."""
    control = root / "DEBIAN" / "control"
    if not control.is_file():
        raise ModgapError(f"{control}: missing; unpack the .deb with `dpkg-deb -x` and `dpkg-deb -e`")
    for line in control.read_text(encoding="utf-8").splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    raise ModgapError(f"{control}: no Version field")


def directory_labels(relative_dir: Path) -> tuple[str, ...]:
    """Every prefix of a category path: ``animals/birds`` -> (``animals``, ``animals/birds``)."""
    parts = [slugify(p) for p in relative_dir.parts if slugify(p)]
    return tuple("/".join(parts[: i + 1]) for i in range(len(parts)))


def item_id(key: str, relative: Path) -> str:
    return f"{key}-{slugify(str(relative.with_suffix('')))}"


def discover_tuxpaint(root: Path) -> list[Item]:
    """Stamps that have a description ``.txt`` and a ``.png`` (preferred) or ``.svg`` image."""
    stamps = root / TUXPAINT_STAMPS
    if not stamps.is_dir():
        raise ModgapError(f"{stamps}: not found; is --tuxpaint-root an unpacked tuxpaint-stamps-default?")
    source = SourceInfo(
        "tuxpaint",
        "tuxpaint-stamps-default",
        read_deb_version(root),
        "GPL-2.0-or-later",
        (root / "usr/share/doc/tuxpaint-stamps-default/copyright",),
        ("GPL-2",),
    )
    items = []
    for txt in sorted(stamps.rglob("*.txt")):
        image = next((p for p in (txt.with_suffix(".png"), txt.with_suffix(".svg")) if p.is_file()), None)
        lines = txt.read_text(encoding="utf-8", errors="replace").splitlines()
        if image is None or not lines:
            continue
        rel = txt.relative_to(stamps)
        items.append(Item(item_id("tuxpaint", rel), image, lines[0].strip(), directory_labels(rel.parent), source))
    return items


_SVG_NS = {
    "dc": "http://purl.org/dc/elements/1.1/",
    "cc": "http://web.resource.org/cc/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
}


def read_svg_metadata(path: Path) -> tuple[str, str]:
    """(title, description) of the ``cc:Work`` in an SVG's RDF metadata; empty strings if absent."""
    try:
        work = ET.parse(path).find(".//cc:Work", _SVG_NS)
    except ET.ParseError:
        return "", ""
    if work is None:
        return "", ""
    return _element_text(work.find("dc:title", _SVG_NS)), _element_text(work.find("dc:description", _SVG_NS))


def _element_text(element: ET.Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def discover_openclipart(root: Path) -> list[Item]:
    """Every regular (non-symlink) SVG; symlinks in the package are duplicates under other folders."""
    svg_root = root / OPENCLIPART_SVG
    if not svg_root.is_dir():
        raise ModgapError(f"{svg_root}: not found; is --openclipart-root an unpacked openclipart-svg?")
    source = SourceInfo(
        "openclipart",
        "openclipart-svg",
        read_deb_version(root),
        "public-domain",
        (root / "usr/share/doc/openclipart-svg/copyright",),
    )
    items = []
    for svg in sorted(p for p in svg_root.rglob("*.svg") if p.is_file() and not p.is_symlink()):
        rel = svg.relative_to(svg_root)
        title, desc = read_svg_metadata(svg)
        items.append(
            Item(
                item_id("openclipart", rel),
                svg,
                title,
                directory_labels(rel.parent),
                source,
                OPENCLIPART_TEMPLATES,
                alt_text=desc,
                key=rel.as_posix(),
            )
        )
    return items


def discover_emoji(root: Path) -> list[Item]:
    """Emoji with a Google (Noto) image; the ``Component`` category (skin-tone swatches) is skipped."""
    meta = root / "emoji.json"
    if not meta.is_file():
        raise ModgapError(f"{meta}: not found; is --emoji-root the `package` folder of emoji-datasource-google?")
    package = json.loads((root / "package.json").read_text(encoding="utf-8"))
    source = SourceInfo(
        "emoji",
        package["name"],
        package["version"],
        "Apache-2.0 (images); MIT (metadata)",
        (root / "LICENSE",),
        ("Apache-2.0",),
    )
    items = []
    for entry in json.loads(meta.read_text(encoding="utf-8")):
        image = root / EMOJI_IMAGES / entry["image"]
        if entry["category"] == "Component" or not entry.get("has_img_google") or not image.is_file():
            continue
        name = entry["name"] or entry["short_name"].replace("_", " ")
        labels = directory_labels(Path(entry["category"]) / entry["subcategory"])
        items.append(
            Item(
                f"emoji-{slugify(entry['short_name'])}",
                image,
                _emoji_name(name),
                labels,
                source,
                EMOJI_TEMPLATES,
                key=entry["image"],
            )
        )
    return items


def _emoji_name(name: str) -> str:
    # Unicode names are upper case ("GRINNING FACE"); flag names are already title case.
    name = name.lower() if name.isupper() else name
    return name.replace(": ", ", ")  # CLDR "man: bald" reads better as "man, bald" inside a template


def discover_openmoji(root: Path, seed: int) -> list[Item]:
    """OpenMoji items that do not repeat the Noto emoji: its own extras plus skin-tone variants.

    Base Unicode emoji are left to the Noto source (same names, would be duplicate captions); of the
    single-skin-tone variants a seeded OPENMOJI_SKINTONE_FRACTION is kept so emoji do not dominate.
    """
    meta = root / "data" / "openmoji.json"
    if not meta.is_file():
        raise ModgapError(f"{meta}: not found; is --openmoji-root the `package` folder of openmoji?")
    package = json.loads((root / "package.json").read_text(encoding="utf-8"))
    source = SourceInfo("openmoji", package["name"], package["version"], "CC-BY-SA-4.0", (root / "LICENSE.txt",))
    items = []
    for entry in json.loads(meta.read_text(encoding="utf-8")):
        image = root / OPENMOJI_IMAGES / f"{entry['hexcode']}.svg"
        if not _keep_openmoji(entry, seed) or not image.is_file():
            continue
        labels = directory_labels(Path(entry["group"]) / entry["subgroups"])
        items.append(
            Item(
                f"openmoji-{slugify(entry['hexcode'])}",
                image,
                _emoji_name(entry["annotation"]),
                labels,
                source,
                EMOJI_TEMPLATES,
                key=entry["hexcode"],
            )
        )
    return items


def _keep_openmoji(entry: dict[str, object], seed: int) -> bool:
    if str(entry["group"]).startswith("extras-"):
        return True
    if entry["skintone_combination"] != "single" or not entry["skintone"]:
        return False
    digest = hashlib.sha256(f"{seed}:openmoji:{entry['hexcode']}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < OPENMOJI_SKINTONE_FRACTION


# ---------------------------------------------------------------------------------------------------
# Images


def load_image(path: Path) -> Image.Image:
    """Open a raster image or render an SVG (cairosvg, imported only here) as RGBA."""
    if path.suffix.lower() == ".svg":
        import cairosvg  # optional dependency of the `build-data` extra

        png = cairosvg.svg2png(url=str(path), output_width=SVG_RENDER_WIDTH)
        return Image.open(io.BytesIO(png)).convert("RGBA")
    with Image.open(path) as img:
        return img.convert("RGBA")


def to_jpeg(img: Image.Image, size: int = IMAGE_SIZE, quality: int = JPEG_QUALITY) -> bytes:
    """Crop to the visible content, fit the longest side to ``size``, centre on a white square.

    Transparent cut-outs get a white background; fixed encoder settings make the bytes reproducible.
    """
    img = img.convert("RGBA")
    bbox = img.getchannel("A").getbbox()
    if bbox is None:
        raise ValueError("image is fully transparent")
    img = img.crop(bbox)
    scale = size / max(img.size)
    resized = img.resize(
        (max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.LANCZOS
    )
    canvas = Image.new("RGB", (size, size), "white")
    canvas.paste(resized, ((size - resized.width) // 2, (size - resized.height) // 2), resized)
    buf = io.BytesIO()
    canvas.save(buf, format="JPEG", quality=quality, subsampling=2, optimize=False, progressive=False)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------
# Output


def build_dataset(
    items: Sequence[Item],
    out_dir: Path,
    *,
    common_licenses_dir: Path | None = None,
    progress: Callable[[Iterable[Item]], Iterable[Item]] = iter,
) -> pd.DataFrame:
    """Convert every item's image, write ``images/``, ``LICENSES/`` and ``manifest.csv`` (last).

    Items whose image cannot be read or rendered are dropped with a warning. Stale JPEGs from an
    earlier build are removed so the directory always matches the manifest.
    """
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for item in progress(sorted(items, key=lambda it: it.id)):
        try:
            data = to_jpeg(load_image(item.image_path))
        except Exception as exc:  # broken files in the source must not stop the build
            log.warning("skipping %s (%s): %s", item.id, item.image_path, exc)
            continue
        target = images_dir / f"{item.id}.jpg"
        if not target.is_file() or target.read_bytes() != data:
            write_bytes_atomic(target, data)
        rows.append(_manifest_row(item, data))
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    _remove_stale_images(images_dir, set(manifest["file"]))
    copy_licenses({it.source for it in items}, out_dir / "LICENSES", common_licenses_dir)
    write_manifest(manifest, out_dir / "manifest.csv")
    _make_readable(out_dir)
    return manifest


def _make_readable(out_dir: Path) -> None:
    # Atomic writes go through mkstemp (mode 0600); committed data should be readable by everyone.
    for path in out_dir.rglob("*"):
        if path.is_file():
            path.chmod(0o644)


def _manifest_row(item: Item, data: bytes) -> dict[str, str]:
    return {
        "id": item.id,
        "file": f"images/{item.id}.jpg",
        "caption": item.caption,
        "labels": ";".join(item.labels),
        "source_package": item.source.package,
        "source_version": item.source.version,
        "license": item.source.license,
        "sha256": sha256_bytes(data),
    }


def _remove_stale_images(images_dir: Path, keep: set[str]) -> None:
    for jpg in images_dir.glob("*.jpg"):
        if f"images/{jpg.name}" not in keep:
            jpg.unlink()


def write_manifest(manifest: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        manifest.to_csv(tmp, index=False, lineterminator="\n", encoding="utf-8")


def copy_licenses(sources: Iterable[SourceInfo], licenses_dir: Path, common_licenses_dir: Path | None = None) -> None:
    """Copy each package's notice as ``<package>.<name>`` and the full texts it refers to as ``<name>.txt``."""
    licenses_dir.mkdir(parents=True, exist_ok=True)
    for source in sorted(sources, key=lambda s: s.package):
        copies = [(notice, f"{source.package}.{notice.name}") for notice in source.license_files]
        if common_licenses_dir is not None:
            copies += [(common_licenses_dir / name, f"{name}.txt") for name in source.common_licenses]
        for src, name in copies:
            if not src.is_file():
                raise ModgapError(f"{src}: licence text for {source.package} not found")
            with atomic_path(licenses_dir / name) as tmp:
                shutil.copyfile(src, tmp)


def read_manifest(path: Path) -> pd.DataFrame:
    """Read a manifest with every column as a string (ids like ``emoji-100`` must not become numbers)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def discover_all(
    *,
    tuxpaint_root: Path | None = None,
    openclipart_root: Path | None = None,
    emoji_root: Path | None = None,
    openmoji_root: Path | None = None,
    seed: int = 0,
) -> list[Item]:
    """Candidate items from every source whose root is given (a source left out is skipped)."""
    items: list[Item] = []
    if tuxpaint_root is not None:
        items += discover_tuxpaint(tuxpaint_root)
    if openclipart_root is not None:
        items += discover_openclipart(openclipart_root)
    if emoji_root is not None:
        items += discover_emoji(emoji_root)
    if openmoji_root is not None:
        items += discover_openmoji(openmoji_root, seed)
    if not items:
        raise ModgapError("no source root given; pass at least one of the --*-root options")
    return unique_ids(items)


def unique_ids(items: Sequence[Item]) -> list[Item]:
    """Suffix colliding ids (e.g. emoji ``+1``/``-1`` both slugify to ``1``) with a hash of their key."""
    counts = Counter(it.id for it in items)
    return [
        replace(it, id=f"{it.id}-{hashlib.sha256(it.key.encode()).hexdigest()[:8]}") if counts[it.id] > 1 else it
        for it in items
    ]
