"""`modgap workflow verify`: does this workspace reproduce a committed revision's metrics and tables?

Each metrics file (``results/metrics/**/*.json``), table (``results/tables/**/*.csv``) and the claims
report is compared key by key with the same file at a git revision (default ``HEAD``). Numbers are
compared with the tolerance of their family:

- **geometry** (everything deterministic given the embeddings): relative 1e-9 (absolute 1e-12 near 0);
- **training** (numbers downstream of MLLM training: ``eval.json``, the eval tables): the number's own
  bootstrap interval where the file records one next to it (``{key}_ci_halfwidth``,
  ``{key}_ci_low``/``{key}_ci_high``, ``{key}_ci`` = [low, high], or a CSV column ``{col} … CI`` holding
  ``[low, high]``), else the geometry tolerance.

When the encoder was retrained to a different checkpoint (``checkpoint_sha256`` in
``results/metrics/encoder.json`` differs: CPU training is bit-reproducible on one machine, not across
machines), every number downstream is a property of another encoder, so every file is judged as
training-dependent: by its interval where it has one (a recall@k: the 95 % binomial interval over the
``n`` pairs recorded beside it), else at **relative 1e-2** (absolute 1e-4 near 0;
the largest headline move measured between two machines' checkpoints was 0.6 %, t→i R@1 0.1947 →
0.1935). Checksums of retrained artefacts become notes. Claim verdicts and every other string must
still match exactly, so a flipped verdict is "differs" in either mode.

Strings, booleans, verdicts and the set of keys must match exactly. ``environment`` records (lock hash,
library versions) never decide a verdict; a difference there is printed as a note, because it explains
the other differences. Markdown and LaTeX renderings of a compared file (same stem, or ``claims.md`` for
``claims.json``) take that file's verdict when their bytes differ. Figures are not compared.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import math
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modgap.errors import ModgapError

GEOMETRY_REL, GEOMETRY_ABS = 1e-9, 1e-12
RETRAINED_REL, RETRAINED_ABS = 1e-2, 1e-4
ENCODER_METRICS = "results/metrics/encoder.json"
RECALL_KEY = re.compile(r"R@\d+$")
TRAINING_FILES = ("results/metrics/eval.json", "results/tables/eval/*")
COMPARED = ("results/metrics/*.json", "results/metrics/**/*.json", "results/tables/**/*.csv", "results/tables/*.csv")
RENDERINGS = ("results/tables/*.md", "results/tables/*.tex", "results/tables/**/*.md", "results/tables/**/*.tex",
              "results/claims.md")  # fmt: skip
INFORMATIONAL_KEYS = {"environment"}
IDENTICAL, WITHIN, DIFFERS, MISSING, ADDED = "identical", "within tolerance", "differs", "missing", "new"
MAX_LISTED = 8


@dataclass
class FileResult:
    path: str
    verdict: str
    differences: list[str] = field(default_factory=list)  # "key: old -> new" lines
    notes: list[str] = field(default_factory=list)
    max_rel: float = 0.0  # the largest relative difference accepted as within tolerance

    @property
    def failed(self) -> bool:
        return self.verdict in (DIFFERS, MISSING)

    def render(self) -> str:
        head = f"{self.verdict:<17} {self.path}"
        if self.verdict == WITHIN:
            head += f"  (largest relative difference {self.max_rel:.2e})"
        lines = [head]
        lines += [f"    {d}" for d in self.differences[:MAX_LISTED]]
        if len(self.differences) > MAX_LISTED:
            lines.append(f"    … and {len(self.differences) - MAX_LISTED} more")
        lines += [f"    note: {n}" for n in self.notes]
        return "\n".join(lines)


# --- tolerances --------------------------------------------------------------------------------------------


def is_training_file(path: str) -> bool:
    return any(fnmatch.fnmatch(path, pattern) for pattern in TRAINING_FILES)


@dataclass
class Comparison:
    training: bool
    retrained: bool = False  # the encoder checkpoint differs: geometry is another encoder's
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    max_rel: float = 0.0
    inexact: bool = False  # some number differed but was within its tolerance

    def numbers(self, key: str, old: float, new: float, halfwidth: float | None) -> None:
        if old == new or (math.isnan(old) and math.isnan(new)):
            return
        scale = max(abs(old), abs(new))
        rel = abs(old - new) / scale if scale else 0.0
        if (self.training or self.retrained) and halfwidth is not None:
            ok, how = abs(old - new) <= halfwidth, f"interval half-width {halfwidth:.3g}"
        elif self.retrained:
            ok = abs(old - new) <= max(RETRAINED_REL * scale, RETRAINED_ABS)
            how = f"relative {RETRAINED_REL:g} (encoder retrained)"
        else:
            ok, how = abs(old - new) <= max(GEOMETRY_REL * scale, GEOMETRY_ABS), f"relative {GEOMETRY_REL:g}"
        if ok:
            self.inexact, self.max_rel = True, max(self.max_rel, rel)
        else:
            self.differences.append(f"{key}: {old!r} -> {new!r} (beyond {how})")

    def exact(self, key: str, old: Any, new: Any) -> None:
        if old == new:
            return
        if self.retrained and key.endswith("sha256"):  # a retrained artefact's checksum
            self.notes.append(f"{key}: {old!r} -> {new!r} (retrained)")
            self.inexact = True
            return
        self.differences.append(f"{key}: {old!r} -> {new!r}")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


def _interval_halfwidth(siblings: dict[str, Any], key: str) -> float | None:
    """The bootstrap interval a metrics record stores beside `key`, as a half-width."""
    if (hw := _number(siblings.get(f"{key}_ci_halfwidth"))) is not None:
        return hw
    low, high = _number(siblings.get(f"{key}_ci_low")), _number(siblings.get(f"{key}_ci_high"))
    if low is not None and high is not None:
        return (high - low) / 2
    pair = siblings.get(f"{key}_ci")
    if isinstance(pair, list) and len(pair) == 2 and all(_number(v) is not None for v in pair):
        return (pair[1] - pair[0]) / 2
    n = siblings.get("n")
    if isinstance(n, int) and not isinstance(n, bool):
        return binomial_halfwidth(_number(siblings.get(key)), n, key)
    return None


def binomial_halfwidth(value: float | None, n: int, key: str) -> float | None:
    """95 % normal-approximation half-width of a recall@k, a proportion over ``n`` pairs (only for
    ``…R@k`` keys): a retrained encoder moving R@1 by 2 of 832 pairs is noise, not a difference."""
    if value is None or n < 1 or not RECALL_KEY.search(key) or not 0.0 <= value <= 1.0:
        return None
    return 1.96 * math.sqrt(max(value * (1.0 - value), 1.0 / n) / n)


# --- JSON --------------------------------------------------------------------------------------------------


def compare_json(old: Any, new: Any, cmp: Comparison, key: str = "", siblings: dict | None = None) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for name in sorted(set(old) | set(new)):
            child = f"{key}.{name}" if key else name
            if name not in new or name not in old:
                cmp.differences.append(f"{child}: {'removed' if name not in new else 'added'}")
            elif name in INFORMATIONAL_KEYS:
                _environment_note(old[name], new[name], cmp, child)
            else:
                compare_json(old[name], new[name], cmp, child, siblings=old)
        return
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            cmp.differences.append(f"{key}: {len(old)} items -> {len(new)}")
            return
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            compare_json(a, b, cmp, f"{key}[{i}]", siblings={})
        return
    a, b = _number(old), _number(new)
    if a is not None and b is not None:
        name = key.rsplit(".", 1)[-1]
        cmp.numbers(key, a, b, _interval_halfwidth(siblings or {}, name))
    else:
        cmp.exact(key, old, new)


def _environment_note(old: Any, new: Any, cmp: Comparison, key: str) -> None:
    if old == new:
        return
    inner = Comparison(training=False)
    compare_json(old, new, inner, key)
    cmp.notes.append("environment differs (explains other differences): " + "; ".join(inner.differences))


# --- CSV ---------------------------------------------------------------------------------------------------

_INTERVAL = re.compile(r"^\[\s*(-?[\d.eE+-]+)\s*,\s*(-?[\d.eE+-]+)\s*\]$")


def _cell(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _csv_interval_columns(header: list[str]) -> dict[str, str]:
    """column -> the column holding its interval, e.g. 'Avg' -> 'Avg 95% CI'."""
    found = {}
    for col in header:
        for other in header:
            if other != col and other.startswith(col + " ") and "CI" in other[len(col) :]:
                found[col] = other
    return found


def compare_csv(old_text: str, new_text: str, cmp: Comparison) -> None:
    old_rows, new_rows = list(csv.reader(io.StringIO(old_text))), list(csv.reader(io.StringIO(new_text)))
    if not old_rows or not new_rows or old_rows[0] != new_rows[0]:
        cmp.exact("header", old_rows[:1], new_rows[:1])
        return
    header = old_rows[0]
    if len(old_rows) != len(new_rows):
        cmp.differences.append(f"rows: {len(old_rows) - 1} -> {len(new_rows) - 1}")
        return
    intervals = _csv_interval_columns(header)
    pairs_column = next((c for c in header if c.startswith("n pairs")), None)  # recall@k's n
    for old_row, new_row in zip(old_rows[1:], new_rows[1:], strict=True):
        row_key = old_row[0] if old_row else "?"
        old_map, new_map = dict(zip(header, old_row, strict=False)), dict(zip(header, new_row, strict=False))
        for col in header:
            key, a_text, b_text = f"[{row_key}].{col}", old_map.get(col, ""), new_map.get(col, "")
            a, b = _cell(a_text), _cell(b_text)
            if a is None or b is None:
                if col not in intervals.values():  # an interval column moves with its number
                    cmp.exact(key, a_text, b_text)
                continue
            halfwidth = _csv_halfwidth(old_map.get(intervals.get(col, ""), ""))
            if halfwidth is None and pairs_column and (n := _cell(old_map.get(pairs_column, ""))):
                halfwidth = binomial_halfwidth(a, int(n), col)
            cmp.numbers(key, a, b, halfwidth)


def _csv_halfwidth(text: str) -> float | None:
    match = _INTERVAL.match(text.strip())
    return (float(match.group(2)) - float(match.group(1))) / 2 if match else None


# --- files and revisions -----------------------------------------------------------------------------------


def git_show(rev: str, path: str, root: Path) -> str | None:
    result = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True, check=False)
    return result.stdout.decode("utf-8") if result.returncode == 0 else None


def git_files(rev: str, root: Path) -> list[str]:
    result = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, "results"], cwd=root,
                            capture_output=True, text=True, check=False)  # fmt: skip
    if result.returncode != 0:
        raise ModgapError(f"git revision {rev!r} not found in {root}: {result.stderr.strip()}")
    return result.stdout.split()


def _matches(path: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(path, p) for p in patterns)


def encoder_checkpoints(text: str | None) -> dict[str, str]:
    """{encoder/dataset: checkpoint sha256} of an encoder metrics file (empty when absent)."""
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return {
        run: str(record["model"]["checkpoint_sha256"])
        for run, record in data.items()
        if isinstance(record, dict)
        and isinstance(record.get("model"), dict)
        and record["model"].get("checkpoint_sha256")
    }


def compare_file(path: str, old: str | None, new: str | None, *, retrained: bool = False) -> FileResult:
    if old is None:
        return FileResult(path, ADDED)
    if new is None:
        return FileResult(path, MISSING, [f"{path} is in the revision but not in the workspace"])
    if old == new:
        return FileResult(path, IDENTICAL)
    cmp = Comparison(training=is_training_file(path), retrained=retrained)
    if path.endswith(".json"):
        try:
            compare_json(json.loads(old), json.loads(new), cmp)
        except json.JSONDecodeError as exc:
            return FileResult(path, DIFFERS, [f"not valid JSON: {exc}"])
    else:
        compare_csv(old, new, cmp)
    # Bytes that differ with no number beyond tolerance and no inexact number: layout or environment only.
    verdict = DIFFERS if cmp.differences else WITHIN if cmp.inexact else IDENTICAL
    return FileResult(path, verdict, cmp.differences, cmp.notes, cmp.max_rel)


def _source_of(rendering: str) -> str:
    if rendering == "results/claims.md":
        return "results/metrics/claims.json"
    return str(Path(rendering).with_suffix(".csv"))


def verify(root: Path, rev: str = "HEAD") -> list[FileResult]:
    """Compare every metrics file, table and rendering of `rev` (and any new one) with the workspace."""
    committed = git_files(rev, root)
    workspace = [str(p.relative_to(root)) for p in (root / "results").rglob("*") if p.is_file()]
    paths = sorted({p for p in [*committed, *workspace] if _matches(p, COMPARED)})
    old_ck, new_ck = (
        encoder_checkpoints(git_show(rev, ENCODER_METRICS, root)),
        encoder_checkpoints(_read(root / ENCODER_METRICS)),
    )
    retrained = bool(old_ck) and bool(new_ck) and old_ck != new_ck
    results = {p: compare_file(p, git_show(rev, p, root), _read(root / p), retrained=retrained) for p in paths}
    if retrained:
        changed = ", ".join(f"{k} {old_ck.get(k, '?')[:12]}… -> {new_ck.get(k, '?')[:12]}…" for k in sorted(new_ck))
        for result in results.values():
            if result.verdict != IDENTICAL:
                result.notes.append(f"encoder retrained ({changed}): judged at the retrained-encoder tolerance")
    for path in sorted({p for p in [*committed, *workspace] if _matches(p, RENDERINGS)}):
        old, new = git_show(rev, path, root), _read(root / path)
        source = results.get(_source_of(path))
        if old is not None and new is not None and old != new and source is not None:
            results[path] = FileResult(path, source.verdict if source.verdict != IDENTICAL else DIFFERS,
                                       notes=[f"a rendering of {source.path}"])  # fmt: skip
        else:
            results[path] = compare_file(path, old, new) if old is None or new is None or old == new else \
                FileResult(path, DIFFERS, [f"{path}: bytes differ"])  # fmt: skip
    return [results[p] for p in sorted(results)]


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def summarise(results: list[FileResult]) -> Iterator[str]:
    for result in results:
        yield result.render()
    counts = {v: sum(r.verdict == v for r in results) for v in (IDENTICAL, WITHIN, DIFFERS, MISSING, ADDED)}
    yield "reproduction: " + ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    yield "verdict: " + ("DIFFERS" if any(r.failed for r in results) else "REPRODUCED")
