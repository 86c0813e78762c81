"""Fault injection over every stage CLI (issue 12): hostile and broken inputs give a one-line error
and leave the output folder absent or unchanged; kill -9 at every write point leaves nothing half
written; reruns clean up and give identical bytes.

Each case records its stage in ``TRIED``; the module prints the count tried per stage at the end
(visible in the normal pytest output, no ``-s`` needed).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from _data_http import FakeServer, serve
from _extract_fixtures import TinyEnv, build_tiny_env, single_torch_thread
from conftest import PROJECT_ROOT
from modgap.cli import main
from modgap.io import folder_lock

TRIED: Counter[str] = Counter()
D = 8  # embedding dimension of the synthetic splits
GAP_PARAMS = {
    "phantom_mc": 200,
    "phantom_max_rows": 200,
    "random_draws": 2,
    "mixing_shuffles": 2,
    "transform_max_pairs": 100,
    "knn_k": 5,
    "oracle_k": 4,
    "eta_ranks": [2, 4],
    "report_k": [1, 2, 4],
    "hash_inputs": False,
}
SPLITS = ("train", "test")


@pytest.fixture(scope="module", autouse=True)
def _report_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    lines = ["", "fault-injection inputs tried per stage:"]
    lines += [f"  {stage:<9} {TRIED[stage]:>4}" for stage in sorted(TRIED)]
    lines.append(f"  {'total':<9} {sum(TRIED.values()):>4}")
    # Past output capturing, so the table shows in every run, not only with -s or on failure.
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        for line in lines:
            (reporter.write_line if reporter else print)(line)


# --- helpers -----------------------------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(list(argv))
    return rc, capsys.readouterr().err


def assert_one_line_error(rc: int, err: str, *expect: str) -> None:
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert rc == 2, err
    assert len(errors) == 1 and "Traceback" not in err, err
    for text in expect:
        assert text in errors[0], errors[0]


def assert_refused_while_locked(capsys, stage: str, lock: Path, argv: list[str], out: Path) -> None:
    """With the stage's lock held (another run in progress), the command fails cleanly and writes nothing."""
    TRIED[stage] += 1
    with folder_lock(lock):
        rc, err = run_cli(capsys, *argv)
    assert_one_line_error(rc, err, "another run")
    assert not out.exists()


def snapshot(path: Path) -> dict[str, bytes] | None:
    """Every file under ``path`` (hidden ones included) with its bytes; None if ``path`` is absent."""
    if not path.exists():
        return None
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def leftovers(out: Path) -> list[Path]:
    """Temporary siblings or files a (killed) run may leave next to or inside ``out``."""
    found = [*out.parent.glob(f".{out.name}.tmp-*"), *out.parent.glob(f".{out.name}.old-*")]
    if out.is_dir():
        found += [p for p in out.rglob(".*.tmp")]
    return found


def unit(n: int, seed: int, offset_axis: int, dim: int = D) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)) * np.linspace(1.5, 0.2, dim)
    x[:, offset_axis] += 2.0
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def write_split(
    directory: Path, x: np.ndarray | None, y: np.ndarray, image_ids: list[str] | None, text_ids: list[str]
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if x is not None:
        np.save(directory / "image.npy", x)
        (directory / "image_ids.txt").write_text("".join(f"{i}\n" for i in image_ids or []))
    np.save(directory / "text.npy", y)
    (directory / "text_ids.txt").write_text("".join(f"{i}\n" for i in text_ids))


def build_tree(root: Path) -> Path:
    """stats (unpaired, 40 + 40), diag (30 pairs), train and test (20 texts each) at dimension D."""
    write_split(
        root / "stats", unit(40, 1, 0), unit(40, 2, 1), [f"si{i}" for i in range(40)], [f"st{i}" for i in range(40)]
    )
    ids = [f"d{i}" for i in range(30)]
    write_split(root / "diag", unit(30, 3, 0), unit(30, 4, 1), ids, ids)
    for k, split in enumerate(SPLITS):
        ids = [f"{split}{i}" for i in range(20)]
        write_split(root / split, unit(20, 10 + k, 0), unit(20, 20 + k, 1), ids, ids)
    return root


@pytest.fixture(scope="module")
def clean_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tree(tmp_path_factory.mktemp("emb"))


@pytest.fixture
def tree(clean_tree: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(clean_tree, tmp_path / "emb"))


# --- corruptions of an embedding tree (shared by gap and align) --------------------------------------


def _load(path: Path) -> np.ndarray:
    return np.load(path)


def truncate(path: Path) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        data = (root / path).read_bytes()
        (root / path).write_bytes(data[: len(data) // 2])

    return apply


def replace_bytes(path: Path, data: bytes) -> Callable[[Path], None]:
    return lambda root: (root / path).write_bytes(data)


def edit_array(path: Path, edit: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        np.save(root / path, edit(_load(root / path)))

    return apply


def set_value(value: float, row: int = 3) -> Callable[[np.ndarray], np.ndarray]:
    def edit(a: np.ndarray) -> np.ndarray:
        a = a.copy()
        a[row, 1] = value
        return a

    return edit


def object_array(root_path: Path) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        np.save(root / root_path, np.array([{"a": 1}] * 4, dtype=object), allow_pickle=True)

    return apply


def edit_ids(path: Path, edit: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        ids = (root / path).read_text().split()
        (root / path).write_text("".join(f"{i}\n" for i in edit(ids)))

    return apply


def one_row(split: str, paired: bool) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        for m in ("image", "text"):
            np.save(root / split / f"{m}.npy", _load(root / split / f"{m}.npy")[:1])
            ids = (root / split / f"{m}_ids.txt").read_text().split()[:1]
            (root / split / f"{m}_ids.txt").write_text(f"{ids[0]}\n")

    return apply


def other_dim(split: str, modalities: tuple[str, ...] = ("image", "text")) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        for m in modalities:
            n = _load(root / split / f"{m}.npy").shape[0]
            np.save(root / split / f"{m}.npy", unit(n, 99, 0, dim=D - 2))

    return apply


def huge(path: Path) -> Callable[[Path], None]:
    # float64: 1e200 is finite, its square is not
    return edit_array(path, lambda a: a.astype(np.float64) * 1e200)


def chain(*fns: Callable[[Path], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        for fn in fns:
            fn(root)

    return apply


P = Path
EMBEDDING_FAULTS: dict[str, Callable[[Path], None]] = {
    "truncated stats image": truncate(P("stats/image.npy")),
    "truncated diag text": truncate(P("diag/text.npy")),
    "empty file": replace_bytes(P("stats/text.npy"), b""),
    "not npy": replace_bytes(P("diag/image.npy"), b"this is not an npy file at all" * 10),
    "object npy": object_array(P("stats/text.npy")),
    "3-D array": edit_array(P("stats/image.npy"), lambda a: a.reshape(a.shape[0], 2, -1)),
    "integer dtype": edit_array(P("diag/text.npy"), lambda a: (a * 100).astype(np.int32)),
    "NaN stats text": edit_array(P("stats/text.npy"), set_value(np.nan)),
    "NaN diag image": edit_array(P("diag/image.npy"), set_value(np.nan, row=29)),
    "Inf stats image": edit_array(P("stats/image.npy"), set_value(np.inf)),
    "-Inf diag text": edit_array(P("diag/text.npy"), set_value(-np.inf)),
    "huge stats image": huge(P("stats/image.npy")),
    "huge diag text": huge(P("diag/text.npy")),
    "zero row": edit_array(P("stats/text.npy"), lambda a: np.where(np.arange(len(a))[:, None] == 5, 0, a)),
    "fewer ids than rows": edit_ids(P("stats/image_ids.txt"), lambda ids: ids[:-5]),
    "more ids than rows": edit_ids(P("diag/text_ids.txt"), lambda ids: [*ids, "x1", "x2"]),
    "diag pairing broken": edit_ids(P("diag/text_ids.txt"), lambda ids: ids[::-1]),
    "diag rows differ": chain(
        edit_array(P("diag/text.npy"), lambda a: a[:-3]), edit_ids(P("diag/text_ids.txt"), lambda ids: ids[:-3])
    ),
    "diag dimension differs": other_dim("diag"),
    "stats text dimension differs": other_dim("stats", ("text",)),
    "one-row stats split": one_row("stats", paired=False),
    "one-row diag split": one_row("diag", paired=True),
    "missing diag file": lambda root: (root / "diag" / "text.npy").unlink(),
    "directory instead of file": lambda root: (
        (root / "stats" / "image.npy").unlink(),
        (root / "stats" / "image.npy").mkdir(),
    ),
}
ALIGN_ONLY_FAULTS: dict[str, Callable[[Path], None]] = {
    "split text dimension differs": other_dim("train", ("text",)),
    "split text missing": lambda root: (root / "test" / "text.npy").unlink(),
    "split ids vs rows": edit_ids(P("train/text_ids.txt"), lambda ids: ids[:-1]),
    "NaN in a split to transform": edit_array(P("test/text.npy"), set_value(np.nan, row=19)),
    "huge split to transform": huge(P("train/text.npy")),
    "stats leaks into diag": edit_ids(P("diag/image_ids.txt"), lambda ids: ["si0", *ids[1:]]),
    "paired stats split": edit_ids(P("stats/text_ids.txt"), lambda ids: [f"si{i}" for i in range(len(ids))]),
    "identical stats rows": edit_array(P("stats/text.npy"), lambda a: np.repeat(a[:1], len(a), axis=0)),
}


# --- gap stats ---------------------------------------------------------------------------------------


def gap_argv(root: Path, out: Path, params: dict | None = None) -> list[str]:
    return [
        "gap",
        "stats",
        "--stats-dir",
        str(root / "stats"),
        "--diag-dir",
        str(root / "diag"),
        "--out-dir",
        str(out),
        "--params",
        json.dumps(params or GAP_PARAMS),
        "--encoder",
        "e",
        "--dataset",
        "d",
    ]


@pytest.fixture(scope="module")
def gap_reference(clean_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("gapref") / "run"
    assert main(gap_argv(clean_tree, out)) == 0
    return snapshot(out)


GAP_PARAM_FAULTS = {
    "frame_energy 1.5": {"frame_energy": 1.5},
    "chunk_rows 0": {"chunk_rows": 0},
    "knn_k string": {"knn_k": "many"},
    "unknown key": {"frame_energi": 0.9},
}


@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "over-previous"])
@pytest.mark.parametrize("fault", sorted(EMBEDDING_FAULTS))
def test_gap_stats_bad_input(fault, existing, tree, tmp_path, capsys, gap_reference):
    TRIED["gap"] += 1
    out = tmp_path / "gap" / "e" / "d"
    if existing:
        out.mkdir(parents=True)
        for name, data in gap_reference.items():
            (out / name).write_bytes(data)
    before = snapshot(out)
    EMBEDDING_FAULTS[fault](tree)
    rc, err = run_cli(capsys, *gap_argv(tree, out))
    assert_one_line_error(rc, err, "modgap gap: error:")
    assert snapshot(out) == before and not leftovers(out)


@pytest.mark.parametrize("fault", sorted(GAP_PARAM_FAULTS))
def test_gap_stats_bad_params(fault, clean_tree, tmp_path, capsys):
    TRIED["gap"] += 1
    out = tmp_path / "out"
    rc, err = run_cli(capsys, *gap_argv(clean_tree, out, {**GAP_PARAMS, **GAP_PARAM_FAULTS[fault]}))
    assert_one_line_error(rc, err, next(iter(GAP_PARAM_FAULTS[fault])))
    assert not out.exists()


def test_gap_stats_on_huge_rows_writes_no_nan(clean_tree, tmp_path, capsys):
    """The issue's case: every row scaled by 1e200 gave rc 0 and a bare NaN in stats.json."""
    TRIED["gap"] += 1
    root = Path(shutil.copytree(clean_tree, tmp_path / "emb"))
    for split in ("stats", "diag"):
        for m in ("image", "text"):
            np.save(root / split / f"{m}.npy", np.load(root / split / f"{m}.npy").astype(np.float64) * 1e200)
    rc, err = run_cli(capsys, *gap_argv(root, tmp_path / "out"))
    assert_one_line_error(rc, err, "overflows")
    assert not (tmp_path / "out").exists()


def test_gap_stats_concurrent_run_is_refused(clean_tree, tmp_path, capsys):
    out = tmp_path / "out"
    assert_refused_while_locked(capsys, "gap", out.parent / f".{out.name}.lock", gap_argv(clean_tree, out), out)


# --- align run ---------------------------------------------------------------------------------------


def align_argv(root: Path, out: Path, method: str = "realign", params: dict | None = None) -> list[str]:
    return [
        "align",
        "run",
        "--method",
        method,
        "--params",
        json.dumps(params or {}),
        "--stats-dir",
        str(root / "stats"),
        "--splits-root",
        str(root),
        "--splits",
        *SPLITS,
        "diag",
        "--diag-dir",
        str(root / "diag"),
        "--out-dir",
        str(out),
        "--pairs",
        "500",
    ]


@pytest.fixture(scope="module")
def align_reference(clean_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    refs = {}
    for method in ("realign", "coral"):
        out = tmp_path_factory.mktemp("alignref") / method
        assert main(align_argv(clean_tree, out, method)) == 0
        refs[method] = snapshot(out)
    return refs


ALIGN_PARAM_FAULTS = {
    ("realign", "chunk_rows 0"): {"chunk_rows": 0},
    ("realign", "unknown parameter"): {"chunk_row": 10},
    ("realign", "steps typo"): {"steps": "ful"},
    ("capdec", "sigma string"): {"sigma": "abc"},
    ("decap", "memory_size string"): {"memory_size": "x"},
    ("coral", "ridge negative"): {"ridge_scale": -1.0},
    ("blockwise", "energy 1.5"): {"energy": 1.5},
}


@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "over-previous"])
@pytest.mark.parametrize("method", ["realign", "coral"])
@pytest.mark.parametrize("fault", sorted({**EMBEDDING_FAULTS, **ALIGN_ONLY_FAULTS}))
def test_align_run_bad_input(fault, method, existing, tree, tmp_path, capsys, align_reference):
    TRIED["align"] += 1
    out = tmp_path / "align" / method
    if existing:
        out.mkdir(parents=True)
        for name, data in align_reference[method].items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes(data)
    before = snapshot(out)
    {**EMBEDDING_FAULTS, **ALIGN_ONLY_FAULTS}[fault](tree)
    rc, err = run_cli(capsys, *align_argv(tree, out, method))
    if rc == 0 and fault.startswith("huge") and method != "realign":
        # Spec 1.3: finite rows whose squared norm overflows are rescaled by their max |entry| first,
        # so these methods accept them; what they write must then be finite, and valid JSON.
        assert_finite_outputs(out)
        return
    assert_one_line_error(rc, err, "modgap align: error:")
    assert snapshot(out) == before and not leftovers(out)


def assert_finite_outputs(out: Path) -> None:
    for path in out.rglob("*.npy"):
        assert np.isfinite(np.load(path)).all(), path
    for path in out.glob("*.json"):
        assert "NaN" not in path.read_text() and "Infinity" not in path.read_text(), path


@pytest.mark.parametrize(("method", "fault"), sorted(ALIGN_PARAM_FAULTS))
def test_align_run_bad_params(method, fault, clean_tree, tmp_path, capsys):
    TRIED["align"] += 1
    params = ALIGN_PARAM_FAULTS[(method, fault)]
    out = tmp_path / "out"
    rc, err = run_cli(capsys, *align_argv(clean_tree, out, method, params))
    assert_one_line_error(rc, err, next(iter(params)))
    assert not out.exists()


def test_realign_on_one_row_stats_split_fails_instead_of_nan(tree, tmp_path, capsys):
    """The issue's case: rc 0 with 100 % NaN substitutes and NaN in diagnostics.json."""
    TRIED["align"] += 1
    one_row("stats", paired=False)(tree)
    rc, err = run_cli(capsys, *align_argv(tree, tmp_path / "out", "realign"))
    assert_one_line_error(rc, err, "needs at least 2 rows")
    assert not (tmp_path / "out").exists()


def test_align_run_concurrent_run_is_refused(clean_tree, tmp_path, capsys):
    out = tmp_path / "out"
    assert_refused_while_locked(capsys, "align", out.parent / f".{out.name}.lock", align_argv(clean_tree, out), out)


def test_align_rerun_is_byte_identical_with_timing_apart_and_mode_0644(clean_tree, tmp_path, align_reference):
    for method in ("realign", "coral"):
        out = tmp_path / method
        assert main(align_argv(clean_tree, out, method)) == 0
        again = snapshot(out)
        ref = align_reference[method]
        assert set(again) == set(ref)
        differ = sorted(name for name in ref if ref[name] != again[name])
        assert differ == ["timing.json"], differ  # wall-clock only: everything else is identical
        assert "fit_seconds" not in again["state.json"].decode() + again["diagnostics.json"].decode()
        modes = {name: stat.S_IMODE((out / name).stat().st_mode) for name in again}
        assert set(modes.values()) == {0o666 & ~_umask()}, modes


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --- kill -9 at every write point --------------------------------------------------------------------

# A helper process imports modgap once, then forks one child per write point. The child wraps
# os.replace so that its POINT-th call (each rename is the moment a file becomes visible) SIGKILLs it:
# no finally or cleanup runs, exactly as with kill -9 there. After each kill the helper records a
# digest of the output folder. (Forking pytest itself is unsafe: its extra threads can hold locks.)
KILL_HELPER = textwrap.dedent(
    """
    import hashlib, importlib, json, os, signal, sys
    from pathlib import Path
    from modgap.cli import build_parser, main

    if os.environ["TINY"]:
        from modgap.embed.tiny import register_tiny_model
        register_tiny_model()
    build_parser()  # imports every stage's commands once, before forking (children inherit them)
    for name in os.environ["WARM"].split(","):
        importlib.import_module(name)

    def digest(out):
        if not out.exists():
            return None
        h = hashlib.sha256()
        for p in sorted(out.rglob("*")):
            if p.is_file():
                h.update(str(p.relative_to(out)).encode() + b"|" + p.read_bytes())
        return h.hexdigest()

    def child(argv, point):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        calls, real = [0], os.replace
        def replace(src, dst):
            calls[0] += 1
            if calls[0] == point:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(src, dst)
        os.replace = replace
        try:
            rc = main(argv)
        except BaseException:
            rc = 3
        os._exit(rc)

    argv, out = json.loads(os.environ["ARGV"]), Path(os.environ["OUT"])
    record = {"before": digest(out), "after_kill": [], "completed_at": None}
    for point in range(1, 60):
        pid = os.fork()
        if pid == 0:
            child(argv, point)
        _, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status):
            record["completed_at"] = point
            record["exit"] = os.WEXITSTATUS(status)
            break
        names = sorted(str(p.relative_to(out)) for p in out.rglob("*")) if out.exists() else None
        marker = bool(os.environ["MARKER"]) and (out / os.environ["MARKER"]).exists()
        record["after_kill"].append([os.WTERMSIG(status), digest(out), marker, names])
    print(json.dumps(record))
    """
)


ALIGN_MODULES = ("modgap.align.run", "modgap.align.realign", "modgap.align.diagnostics", "safetensors.numpy")
GAP_MODULES = ("modgap.gap.stage",)
DATA_MODULES = ("modgap.data.prepare",)
EMBED_MODULES = ("modgap.embed.extract", "open_clip", "torch")


def kill_at_each_write(
    argv: list[str], out: Path, stage: str, warm: tuple[str, ...], *, marker: str = "", tiny: bool = False
) -> dict:
    """Kill the run at write point 1, 2, ... until it completes; returns the helper's record, whose
    ``after_kill`` holds (signal, digest of ``out``, ``marker`` present, file names) per kill."""
    env = {
        **os.environ,
        "ARGV": json.dumps(argv),
        "OUT": str(out),
        "WARM": ",".join(warm),
        "MARKER": marker,
        "TINY": "1" if tiny else "",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(PROJECT_ROOT / "src"),
    }
    result = subprocess.run(
        [sys.executable, "-c", KILL_HELPER], capture_output=True, text=True, env=env, check=False, timeout=300
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.splitlines()[-1])
    assert record["completed_at"] is not None and record["exit"] == 0, record
    for sig, *_ in record["after_kill"]:
        TRIED[stage] += 1
        assert sig == signal.SIGKILL
    return record


def assert_absent_or_unchanged(record: dict) -> None:
    # Between the two renames of the swap the folder is briefly absent: absent or unchanged, never mixed.
    for _sig, after, _marker, names in record["after_kill"]:
        assert after in (None, record["before"]), names


@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "over-previous"])
def test_align_run_killed_at_every_write_point(existing, clean_tree, tmp_path, align_reference):
    out = tmp_path / "realign"
    if existing:
        out.mkdir()
        for name, data in align_reference["realign"].items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes(data)
    record = kill_at_each_write(align_argv(clean_tree, out), out, "align", ALIGN_MODULES)
    assert_absent_or_unchanged(record)
    assert len(record["after_kill"]) >= 8  # state x2, substitutes x3, diagnostics, timing, swap
    assert not leftovers(out)
    final = snapshot(out)
    assert {k: v for k, v in final.items() if k != "timing.json"} == {
        k: v for k, v in align_reference["realign"].items() if k != "timing.json"
    }


@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "over-previous"])
def test_gap_stats_killed_at_every_write_point(existing, clean_tree, tmp_path, gap_reference):
    out = tmp_path / "gap"
    if existing:
        out.mkdir()
        for name, data in gap_reference.items():
            (out / name).write_bytes(data)
    record = kill_at_each_write(gap_argv(clean_tree, out), out, "gap", GAP_MODULES)
    assert_absent_or_unchanged(record)
    assert len(record["after_kill"]) >= 3
    assert not leftovers(out)
    assert snapshot(out) == gap_reference


# --- data prepare ------------------------------------------------------------------------------------


def folder_zip(n: int = 12) -> bytes:
    """A folder-format dataset (tiny PNGs + captions.csv) as a zip archive."""
    from PIL import Image

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        rows = ["file,caption"]
        for i in range(n):
            img = io.BytesIO()
            Image.new("RGB", (4, 4), (20 * i, 255 - 20 * i, 7 * i)).save(img, format="PNG")
            zf.writestr(f"images/im{i:02d}.png", img.getvalue())
            rows.append(f"images/im{i:02d}.png,a square of colour number {i}")
        zf.writestr("captions.csv", "\n".join(rows) + "\n")
    return buf.getvalue()


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with serve() as state:
        state.files["/data.zip"] = folder_zip()
        yield state


@pytest.fixture(autouse=True)
def _no_download_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    import modgap.data.download as download

    monkeypatch.setattr(download, "RETRY_BACKOFF_S", 0.0)


def http_config(server: FakeServer, root: Path, **changes: object) -> dict:
    data = server.files["/data.zip"]
    cfg = {
        "source": "http",
        "format": "folder",
        "path": str(root / "raw"),
        "archives": [{"url": server.url("/data.zip"), "sha256": hashlib.sha256(data).hexdigest()}],
        "splits": {"stats": 0.4, "diag": 0.2, "train": 0.2, "test": 0.2},
    }
    cfg.update(changes)
    return cfg


def prepare_argv(cfg: dict, out: Path, *extra: str) -> list[str]:
    return ["data", "prepare", "--dataset-config", json.dumps(cfg), "--out", str(out), "--no-progress", *extra]


def test_data_checksum_typo_keeps_the_verified_download(server, tmp_path, capsys):
    """The issue's case: a typo deleted the (18 GB) verified archive and fetched it again before failing."""
    TRIED["data"] += 1
    out = tmp_path / "ds" / "manifest.parquet"
    assert run_cli(capsys, *prepare_argv(http_config(server, tmp_path), out))[0] == 0
    archive = tmp_path / "raw" / "downloads" / "data.zip"
    before, requests = snapshot(tmp_path / "ds"), len(server.requests)
    typo = http_config(server, tmp_path)
    good = typo["archives"][0]["sha256"]
    typo["archives"][0]["sha256"] = good[:-1] + ("0" if good[-1] != "0" else "1")
    rc, err = run_cli(capsys, *prepare_argv(typo, out))
    assert_one_line_error(rc, err, good, typo["archives"][0]["sha256"], "--refetch")
    assert archive.read_bytes() == server.files["/data.zip"] and len(server.requests) == requests
    assert snapshot(tmp_path / "ds") == before
    archive.write_bytes(b"tampered")  # --refetch deletes on purpose and downloads again
    assert run_cli(capsys, *prepare_argv(http_config(server, tmp_path), out, "--refetch"))[0] == 0
    assert archive.read_bytes() == server.files["/data.zip"] and snapshot(tmp_path / "ds") == before


DATA_FAULTS: dict[str, Callable[[FakeServer, Path], dict]] = {
    "splits sum 1.3": lambda s, r: http_config(s, r, splits={"stats": 0.5, "diag": 0.3, "train": 0.3, "test": 0.2}),
    "split counts > images": lambda s, r: http_config(s, r, splits={"stats": 10, "diag": 5, "train": 5, "test": 5}),
    "mixed counts and fractions": lambda s, r: http_config(
        s, r, splits={"stats": 4, "diag": 0.5, "train": 0, "test": 0}
    ),
    "wrong checksum of download": lambda s, r: {
        **http_config(s, r),
        "archives": [{"url": s.url("/data.zip"), "sha256": "0" * 64}],
    },
    "malformed checksum": lambda s, r: {
        **http_config(s, r),
        "archives": [{"url": s.url("/data.zip"), "sha256": "abc"}],
    },
    "404": lambda s, r: {**http_config(s, r), "archives": [{"url": s.url("/missing.zip"), "sha256": "0" * 64}]},
    "duplicate archive names": lambda s, r: {
        **http_config(s, r),
        "archives": [
            {"url": s.url("/data.zip"), "sha256": "0" * 64},
            {"url": s.url("/b/data.zip"), "sha256": "1" * 64},
        ],
    },
    "folder path missing": lambda s, r: {"source": "folder", "format": "folder", "path": str(r / "nowhere")},
    "unknown key": lambda s, r: http_config(s, r, sorce="http"),
    "not JSON": lambda s, r: "{not json",  # type: ignore[dict-item,return-value]
    "zip slip": lambda s, r: {
        **http_config(s, r),
        "archives": [{"url": s.url("/slip.zip"), "sha256": hashlib.sha256(s.files["/slip.zip"]).hexdigest()}],
    },
}


@pytest.mark.parametrize("fault", sorted(DATA_FAULTS))
def test_data_prepare_bad_input(fault, server, tmp_path, capsys):
    TRIED["data"] += 1
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../escape.txt", "outside")
    server.files["/slip.zip"] = buf.getvalue()
    out = tmp_path / "ds" / "manifest.parquet"
    cfg = DATA_FAULTS[fault](server, tmp_path)
    argv = (
        prepare_argv(cfg, out)
        if isinstance(cfg, dict)
        else ["data", "prepare", "--dataset-config", cfg, "--out", str(out), "--no-progress"]
    )
    rc, err = run_cli(capsys, *argv)
    assert_one_line_error(rc, err, "modgap data: error:")
    assert not out.exists() and not (tmp_path / "ds" / "summary.json").exists()
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "raw" / "escape.txt").exists()


def test_data_prepare_concurrent_run_is_refused(server, tmp_path, capsys):
    out = tmp_path / "ds" / "manifest.parquet"
    assert_refused_while_locked(
        capsys, "data", out.with_name(f".{out.name}.lock"), prepare_argv(http_config(server, tmp_path), out), out
    )


def test_data_prepare_cleans_temporaries_of_killed_runs(server, tmp_path, capsys):
    TRIED["data"] += 1
    out = tmp_path / "ds" / "manifest.parquet"
    out.parent.mkdir(parents=True)
    (out.parent / ".manifest.parquet.k1ll3d.tmp").write_bytes(b"x" * 1000)
    raw = tmp_path / "raw"
    (raw / "downloads").mkdir(parents=True)
    (raw / "downloads" / ".data.zip.verified.json.abc.tmp").write_text("{")
    (raw / ".data.zip.xyz.extracting").mkdir()
    assert run_cli(capsys, *prepare_argv(http_config(server, tmp_path), out))[0] == 0
    assert not [*out.parent.glob(".*.tmp"), *(raw / "downloads").glob(".*.tmp"), *raw.glob(".*.extracting")]


def test_data_prepare_killed_at_every_write_point(server, tmp_path, capsys):
    # Local folder source: the helper process cannot reach this process's loopback server state.
    root = tmp_path / "folder"
    with zipfile.ZipFile(io.BytesIO(server.files["/data.zip"])) as zf:
        zf.extractall(root)
    cfg = {"source": "folder", "format": "folder", "path": str(root)}
    out = tmp_path / "ds" / "manifest.parquet"
    assert run_cli(capsys, *prepare_argv(cfg, tmp_path / "ref" / "manifest.parquet"))[0] == 0
    record = kill_at_each_write(prepare_argv(cfg, out), out.parent, "data", DATA_MODULES)
    for _sig, _digest, _marker, names in record["after_kill"]:
        # manifest and summary appear only by rename: whatever is there is complete (temporaries aside)
        assert set(names or []) - {n for n in names or [] if n.startswith(".")} <= {
            "manifest.parquet",
            "summary.json",
        }, names
    assert out.read_bytes() == (tmp_path / "ref" / "manifest.parquet").read_bytes()
    assert not list(out.parent.glob(".*.tmp"))


# --- embed extract -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyEnv]:
    with single_torch_thread():
        yield build_tiny_env(tmp_path_factory.mktemp("tinyenv"))


def embed_argv(env: TinyEnv, out: Path, manifest: Path | None = None, split: str = "diag", *extra: str) -> list[str]:
    return [
        "embed",
        "extract",
        "--manifest",
        str(manifest or env.manifest),
        "--split",
        split,
        "--model",
        env.model,
        "--pretrained",
        str(env.checkpoint),
        "--out-dir",
        str(out),
        "--root",
        str(env.root),
        "--device",
        "cpu",
        "--batch-size",
        "2",
        "--shard-rows",
        "4",
        "--no-progress",
        *extra,
    ]


@pytest.fixture(scope="module")
def embed_reference(tiny_env: TinyEnv, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("embedref") / "diag"
    with single_torch_thread():
        assert main(embed_argv(tiny_env, out)) == 0
    return snapshot(out)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _manifest_with(env: TinyEnv, path: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Path:
    edit(env.frame.copy()).to_parquet(path, index=False)
    return path


EMBED_FAULTS: dict[str, tuple[Callable[[TinyEnv, Path], Path], tuple[str, ...]]] = {
    "missing manifest": (lambda env, tmp: tmp / "absent.parquet", ()),
    "manifest not parquet": (lambda env, tmp: _write(tmp / "m.parquet", b"PAR1 broken"), ()),
    "split with no rows": (
        lambda env, tmp: _manifest_with(env, tmp / "m.parquet", lambda f: f[f["split"] != "diag"]),
        (),
    ),
    "duplicate ids": (
        lambda env, tmp: _manifest_with(
            env, tmp / "m.parquet", lambda f: f.assign(id=f["id"].where(f["split"] != "diag", "same"))
        ),
        (),
    ),
    "missing column": (
        lambda env, tmp: _manifest_with(env, tmp / "m.parquet", lambda f: f.drop(columns="caption")),
        (),
    ),
    "missing image": (
        lambda env, tmp: _manifest_with(
            env, tmp / "m.parquet", lambda f: f.assign(image_path=f["image_path"].str.replace("img", "nope"))
        ),
        (),
    ),
    "image checksum typo": (
        lambda env, tmp: _manifest_with(env, tmp / "m.parquet", lambda f: f.assign(sha256="0" * 64)),
        (),
    ),
    "empty caption": (lambda env, tmp: _manifest_with(env, tmp / "m.parquet", lambda f: f.assign(caption=" ")), ()),
    "batch size 0": (lambda env, tmp: env.manifest, ("--batch-size", "0")),
    "unknown model": (lambda env, tmp: env.manifest, ("--model", "no-such-model")),
}


@pytest.mark.parametrize("fault", sorted(EMBED_FAULTS))
def test_embed_extract_bad_input(fault, tiny_env, tmp_path, capsys):
    TRIED["embed"] += 1
    make_manifest, extra = EMBED_FAULTS[fault]
    out = tmp_path / "diag"
    with single_torch_thread():
        rc, err = run_cli(capsys, *embed_argv(tiny_env, out, make_manifest(tiny_env, tmp_path)), *extra)
    assert_one_line_error(rc, err, "modgap embed: error:")
    assert not (out / "meta.json").exists() and not leftovers(out)


def test_embed_extract_concurrent_run_is_refused(tiny_env, tmp_path, capsys, embed_reference):
    TRIED["embed"] += 1
    out = tmp_path / "diag"
    out.mkdir()
    for name, data in embed_reference.items():
        (out / name).write_bytes(data)
    with folder_lock(out / ".extract.lock"), single_torch_thread():
        rc, err = run_cli(capsys, *embed_argv(tiny_env, out))
    assert_one_line_error(rc, err, "another run")
    assert snapshot(out) == embed_reference


def test_embed_extract_removes_leftovers_of_a_killed_assembly(tiny_env, tmp_path, capsys, embed_reference):
    """The issue's case: kill -9 in the final assembly left a full-size .image.npy.*.tmp forever."""
    TRIED["embed"] += 1
    out = tmp_path / "diag"
    (out / ".shards").mkdir(parents=True)
    (out / ".image.npy.k1ll3d.tmp").write_bytes(b"\0" * 4096)
    (out / ".shards" / ".text-00000.npy.abc.tmp").write_bytes(b"\0" * 64)
    with single_torch_thread():
        assert run_cli(capsys, *embed_argv(tiny_env, out))[0] == 0
    assert snapshot(out) == embed_reference and not leftovers(out)


def test_embed_extract_killed_at_every_write_point(tiny_env, tmp_path, embed_reference):
    out = tmp_path / "diag"
    record = kill_at_each_write(embed_argv(tiny_env, out), out, "embed", EMBED_MODULES, marker="meta.json", tiny=True)
    for _sig, _digest, marker_present, _names in record["after_kill"]:
        # resumable by design: a killed run leaves shards but never the completion marker
        assert not marker_present
    assert snapshot(out) == embed_reference and not leftovers(out)


# --- modgap config: the 19 values of the issue -------------------------------------------------------


def _set(path: str, value: object) -> Callable[[dict], None]:
    def edit(config: dict) -> None:
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value

    return edit


ANISO = "align.methods.anisoalign"
ENC = "encoders.lit-effnet-minilm"
# (dotted key that must be named, edit). 15 the issue lists as accepted, 4 as crashing.
NINETEEN = {
    "stage1_steps -5": (f"{ANISO}.stage1_steps", _set(f"{ANISO}.stage1_steps", -5)),
    "stage2_lr -0.1": (f"{ANISO}.stage2_lr", _set(f"{ANISO}.stage2_lr", -0.1)),
    "frame_energy 1.5": ("gap.params.frame_energy", _set("gap.params.frame_energy", 1.5)),
    "chunk_rows 0": ("align.methods.realign.chunk_rows", _set("align.methods.realign", {"chunk_rows": 0})),
    "preset nonexistent": ("mllm.preset", _set("mllm.preset", "nonexistent")),
    "splits sum 1.3": (
        "datasets.embedded.splits",
        _set("datasets.embedded.splits", {"stats": 0.5, "diag": 0.3, "train": 0.3, "test": 0.2}),
    ),
    "split counts > dataset": (
        "datasets.embedded.splits",
        _set("datasets.embedded.splits", {"stats": 5000, "diag": 500, "train": 500, "test": 1}),
    ),
    "dataset path missing": ("datasets.embedded.path", _set("datasets.embedded.path", "data/nowhere")),
    "dynamics lr 0": ("gap.dynamics.params.lr", _set("gap.dynamics.params.lr", 0)),
    "blockwise energy 1.5": ("align.methods.blockwise.energy", _set("align.methods.blockwise", {"energy": 1.5})),
    "accelerate config missing": ("mllm.accelerate_config", _set("mllm.accelerate_config", "config/accelerate/x.yaml")),
    "shell in model name": (f"{ENC}.model", _set(f"{ENC}.model", "x$(touch INJECTED)")),
    "random_draws 0": ("gap.params.random_draws", _set("gap.params.random_draws", 0)),
    "aniso study params": (
        "align.studies.aniso.params.stage1_steps",
        _set("align.studies.aniso.params.stage1_steps", -1),
    ),
    "decap tau 0": ("align.methods.decap.tau", _set("align.methods.decap", {"tau": 0})),
    "sigma abc": ("align.methods.capdec.sigma", _set("align.methods.capdec", {"sigma": "abc"})),
    "rank x": (f"{ANISO}.rank", _set(f"{ANISO}.rank", "x")),
    "bound_theta null": (f"{ANISO}.bound_theta", _set(f"{ANISO}.bound_theta", None)),
    "memory_size x": ("align.methods.decap.memory_size", _set("align.methods.decap", {"memory_size": "x"})),
}


def _default_config() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "config" / "config.yaml").read_text())


def test_nineteen_is_nineteen():
    assert len(NINETEEN) == 19


@pytest.mark.parametrize("case", list(NINETEEN))
def test_modgap_config_names_the_key(case, tmp_path, capsys, monkeypatch):
    TRIED["config"] += 1
    key, edit = NINETEEN[case]
    config = _default_config()
    edit(config)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.chdir(PROJECT_ROOT)  # relative dataset paths and presets resolve as in a real run
    rc, err = run_cli(capsys, "config", str(path))
    assert_one_line_error(rc, err, key + ":")


def test_modgap_config_merges_a_paper_overlay_like_snakemake(tmp_path, capsys, monkeypatch):
    TRIED["config"] += 1
    monkeypatch.chdir(PROJECT_ROOT)
    paper = "config/paper/coco2017-vitl14-336.yaml"
    rc, _ = run_cli(capsys, "config", "config/config.yaml", "--overlay", paper)
    assert rc == 0
    overlay = yaml.safe_load((PROJECT_ROOT / paper).read_text())
    overlay["datasets"]["coco2017"]["archives"][1]["md5"] = "not-a-checksum"
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(overlay))
    rc, err = run_cli(capsys, "config", "config/config.yaml", "--overlay", str(path))
    assert_one_line_error(rc, err, "datasets.coco2017.archives.1.md5")


def test_modgap_config_subprocess_has_no_traceback(tmp_path):
    """Once end to end: exit status 2, one line on stderr."""
    TRIED["config"] += 1
    config = _default_config()
    NINETEEN["rank x"][1](config)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "modgap"), "config", str(path)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")},
    )
    assert_one_line_error(result.returncode, result.stderr, f"{ANISO}.rank:")


# --- the workflow: no config value reaches a shell unquoted ------------------------------------------

INJECTED = "INJECTED"
HOSTILE = [
    f"x$(touch {INJECTED})",
    f"x`touch {INJECTED}`",
    f"x; touch {INJECTED}",
    f"x' ; touch {INJECTED} ; '",
    f'x" && touch {INJECTED} && "',
    f"x | touch {INJECTED}",
    f"x\ntouch {INJECTED}",
    f"$(touch {INJECTED})",
]
FAKE_TOOL = '#!/bin/sh\nprintf "%s\\n" "$0" "$@" >> "$ARGV_LOG"\nexit 0\n'


def workflow_config() -> dict:
    """The default config with a small alignment and MLLM part, and one lmms-eval task (so every rule,
    eval_lmms included, is in the DAG)."""
    config = _default_config()
    config["gap"]["dynamics"]["datasets"] = []
    config["align"]["methods"] = {"identity": {}, "realign": {}, "anisoalign": {"variant": "full"}}
    config["align"]["studies"] = {
        "sample_size": {"sizes": [20, 40], "seeds": 2},
        "aniso": {"ranks": [2], "params": {"variant": "refine"}},
    }
    config["mllm"]["regimes"] = {"revision-realign": {"stage1": "realign", "stage2": "image"}}
    config["datasets"]["embedded"]["license"] = "CC0"
    config["eval"]["lmms_eval"]["tasks"] = ["pope"]
    return config


def string_leaves(node: object, path: tuple = ()) -> Iterator[tuple]:
    """Dotted paths of every string value (dict keys are names: they are wildcards, checked by pattern)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from string_leaves(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from string_leaves(value, (*path, i))
    elif isinstance(node, str):
        yield path


def set_leaf(config: dict, path: tuple, value: object) -> None:
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


@pytest.fixture(scope="module")
def wf_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the workflow (Snakefile, rules, schemas, sources) and fake `modgap`/`accelerate` tools."""
    root = tmp_path_factory.mktemp("wf") / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    root.mkdir()
    shutil.copytree(PROJECT_ROOT / "workflow", root / "workflow", ignore=ignore)
    shutil.copytree(PROJECT_ROOT / "src" / "modgap", root / "src" / "modgap", ignore=ignore)
    (root / "config").mkdir()
    (root / "data" / "embedded").mkdir(parents=True)
    bin_dir = root / ".fakebin"
    bin_dir.mkdir()
    for tool in ("modgap", "accelerate"):
        (bin_dir / tool).write_text(FAKE_TOOL)
        (bin_dir / tool).chmod(0o755)
    return root


def _injected(root: Path) -> list[Path]:
    return [p for p in root.rglob(INJECTED)] + [p for p in Path.cwd().glob(INJECTED)]


@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
def test_config_check_names_or_accepts_every_hostile_string(hostile, wf_project):
    """Every string field, one at a time: rejected by the schema naming its key, or accepted as a literal
    (free text the rules quote: here only the dataset licence; paths must name existing files)."""
    from modgap.config import validate_config
    from modgap.errors import ConfigError

    base = workflow_config()
    literal = []
    for path in string_leaves(base):
        TRIED["workflow"] += 1
        config = copy.deepcopy(base)
        set_leaf(config, path, hostile)
        try:
            validate_config(config, PROJECT_ROOT / "workflow/schemas/config.schema.yaml", root=wf_project)
        except ConfigError as exc:
            assert ".".join(map(str, path)) in str(exc) and "\n" not in str(exc), (path, str(exc))
        else:
            literal.append(".".join(map(str, path)))
    assert set(literal) <= {"datasets.embedded.license"}, literal
    assert not _injected(wf_project)


def _render_commands(project: Path, env: dict[str, str]) -> list[str]:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "snakemake"), "-n", "-p", "--forceall", "--cores", "1"],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return [
        line.removeprefix("Shell command: ")
        for line in result.stdout.splitlines()
        if line.startswith("Shell command: ")
    ]


def _run_rendered(project: Path, commands: list[str], env: dict[str, str]) -> None:
    """Execute each rendered rule command with bash, as Snakemake would (log folders created first)."""
    import shlex

    for command in commands:
        words = shlex.split(command)
        for i, word in enumerate(words[:-1]):
            if word == ">":
                (project / words[i + 1]).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["bash", "-c", command], cwd=project, env=env, capture_output=True, check=False)


def _wf_env(project: Path, log: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{project / '.fakebin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "ARGV_LOG": str(log),
        "PYTHONPATH": str(project / "src"),
    }


def test_rule_shells_quote_every_value_even_without_validation(wf_project, tmp_path):
    """Defence in depth: with the Snakefile's validation removed, hostile values in every string field
    that is not a name (names are wildcards: a hostile one matches no rule) reach the rendered
    commands; executing all of them runs nothing, and the tools receive the values verbatim."""
    project = Path(shutil.copytree(wf_project, tmp_path / "p", symlinks=True))
    snakefile = project / "workflow" / "Snakefile"
    snakefile.write_text(snakefile.read_text().replace("validate_config(config,", "(lambda *a: None)(config,"))
    config = workflow_config()
    hostile = HOSTILE[0]
    fields = [
        ("encoders", "lit-effnet-minilm", "model"),
        ("embed", "device"),
        ("embed", "precision"),
        ("mllm", "preset"),
        ("mllm", "accelerate_config"),
        ("eval", "lmms_eval", "device"),
        ("eval", "lmms_eval", "tasks", 0),
        ("datasets", "embedded", "license"),
        ("report", "tier"),
        ("align", "methods", "anisoalign", "variant"),
        ("align", "studies", "aniso", "params", "variant"),
    ]
    for i, path in enumerate(fields):
        TRIED["workflow"] += 1
        # each field gets a differently quoted variant (no newline: one rendered command per line)
        set_leaf(config, path, [h for h in HOSTILE if "\n" not in h][i % (len(HOSTILE) - 1)])
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    log = tmp_path / "argv.log"
    commands = _render_commands(project, _wf_env(project, log))
    assert len(commands) > 20 and any("mllm launch --accelerate-config" in c for c in commands)
    _run_rendered(project, commands, _wf_env(project, log))
    assert not _injected(project)
    recorded = log.read_text()
    assert hostile in recorded and config["mllm"]["preset"] in recorded  # passed through verbatim


def test_snakemake_run_with_hostile_config_executes_nothing(wf_project, tmp_path):
    """The real thing: Snakemake on a config with a hostile value in every string field fails cleanly at
    validation, and with hostile values only where they are legal literals it runs the jobs (the fake
    tools record them) without executing anything."""
    project = Path(shutil.copytree(wf_project, tmp_path / "p", symlinks=True))
    snakemake = str(Path(sys.executable).parent / "snakemake")
    log = tmp_path / "argv.log"
    env = _wf_env(project, log)
    config = workflow_config()
    for path in string_leaves(config):
        set_leaf(config, path, HOSTILE[0])
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    TRIED["workflow"] += 1
    result = subprocess.run(
        [snakemake, "--cores", "1", "--forceall"], cwd=project, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0 and "invalid configuration" in result.stdout + result.stderr
    assert not log.exists() and not _injected(project)

    config = workflow_config()
    config["datasets"]["embedded"]["license"] = HOSTILE[3]
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    TRIED["workflow"] += 1
    subprocess.run(
        [snakemake, "--cores", "1", "--forceall", "--keep-going"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert not _injected(project)
    assert HOSTILE[3] in log.read_text()  # the data rule ran, with the licence as a literal in its JSON


def test_align_metrics_are_byte_identical_between_identical_runs(clean_tree, tmp_path, monkeypatch):
    """Two complete runs of the same method (fit times differ) give the same results/metrics bytes."""
    import modgap.align.report as align_report

    monkeypatch.setattr(align_report, "figures", lambda runs, studies, out: [])  # matplotlib: slow, not metrics
    metrics = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        monkeypatch.chdir(tmp_path / run)  # the metrics name their figures by relative path
        assert main(align_argv(clean_tree, Path("align/realign"), "realign")) == 0
        assert (
            main(
                [
                    "align",
                    "report",
                    "--inputs",
                    "align",
                    "--tables-dir",
                    "tables",
                    "--figures-dir",
                    "figures",
                    "--metrics",
                    "metrics.json",
                ]
            )
            == 0
        )
        metrics.append(Path("metrics.json").read_bytes())
    assert metrics[0] == metrics[1]
    assert b"seconds" not in metrics[0]
