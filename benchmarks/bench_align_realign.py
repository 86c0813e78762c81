"""Benchmark: streaming ReAlign fit + transform vs plain numpy passes vs the authors' four-pass approach.

Creates (once) a memory-mapped float32 text file of ROWS x DIM unit rows (1M x 1280 = 5.1 GB) and an
image file of IMAGE_ROWS x DIM in --dir, then runs each mode in a fresh child process and prints JSON:

- ``plain``: one float64-accumulating numpy pass over the text file (``acc += chunk.astype(f64).sum(0)``);
- ``ours``: ``make("realign").fit(image.npy, text.npy)`` + ``transform_to_file`` (streaming, O(d) state);
- ``reference``: a straightforward re-implementation of the authors' ``embed_ReAlign.py``: the whole
  file loaded in memory, four passes of 10k-row chunks with their ``l2_normalize`` (float64 cast,
  nan_to_num, max-abs scaling), float32 means, and the whole output array built in memory, then saved.

Each child reports its wall time and peak RSS (``ru_maxrss``). Run: ``python benchmarks/bench_align_realign.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHUNK = 10_000


def make_file(path: Path, rows: int, dim: int, seed: int, shift_axis: int) -> None:
    if path.exists():
        return
    from numpy.lib.format import open_memmap

    tmp = path.with_suffix(".tmp.npy")
    out = open_memmap(tmp, mode="w+", dtype=np.float32, shape=(rows, dim))
    rng = np.random.default_rng(seed)
    scales = np.linspace(1.5, 0.05, dim).astype(np.float32)
    for s in range(0, rows, 100_000):
        n = min(100_000, rows - s)
        x = rng.standard_normal((n, dim), dtype=np.float32) * scales
        x[:, shift_axis] += 2.5
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[s : s + n] = x
    out.flush()
    del out
    os.replace(tmp, path)


def peak_rss_mb() -> float:
    """VmHWM of this process (ru_maxrss survives exec, so it would include the parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mode_plain(text: Path, image: Path, out: Path) -> dict:
    arr = np.load(text, mmap_mode="r")
    t0 = time.perf_counter()
    acc = np.zeros(arr.shape[1])
    for s in range(0, arr.shape[0], CHUNK):
        acc += arr[s : s + CHUNK].astype(np.float64).sum(0)
    return {"seconds": time.perf_counter() - t0}


def mode_plain_write(text: Path, image: Path, out: Path) -> dict:
    """One streaming pass that reads, accumulates and writes a float32 copy (the output's bytes)."""
    arr = np.load(text, mmap_mode="r")
    t0 = time.perf_counter()
    acc = np.zeros(arr.shape[1])
    with open(out, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": arr.shape})
        for s in range(0, arr.shape[0], CHUNK):
            block = arr[s : s + CHUNK].astype(np.float64)
            acc += block.sum(0)
            fh.write(block.astype(np.float32).data)
    return {"seconds": time.perf_counter() - t0}


def mode_ours_nowrite(text: Path, image: Path, out: Path) -> dict:
    """Fit + transform with the substitutes discarded: the compute side without the disk write."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from modgap.align import make
    from modgap.align.source import EmbeddingSource

    t0 = time.perf_counter()
    model = make("realign").fit(image, text)
    t_fit = time.perf_counter() - t0
    src = EmbeddingSource(text, "text")
    with model._blas_limit():
        for _ in model._iter_transform(src, model.state_, ""):
            pass
    return {"seconds": time.perf_counter() - t0, "fit_seconds": t_fit}


def mode_ours(text: Path, image: Path, out: Path) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from modgap.align import make

    t0 = time.perf_counter()
    model = make("realign").fit(image, text)
    t_fit = time.perf_counter() - t0
    model.transform_to_file(text, out)
    return {"seconds": time.perf_counter() - t0, "fit_seconds": t_fit, "scale": float(model.state_["scale"])}


def _l2_normalize(x: np.ndarray, eps: float = 1e-10) -> np.ndarray:
    """The authors' l2_normalize: float64, NaN/Inf -> 0, max-abs scaling, norms < eps treated as 1."""
    x = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    m = np.max(np.abs(x), axis=1, keepdims=True)
    m[m < eps] = 1.0
    x = x / m
    n = np.linalg.norm(x, axis=1, keepdims=True)
    n[n < eps] = 1.0
    return x / n


def mode_reference(text: Path, image: Path, out: Path) -> dict:
    t0 = time.perf_counter()
    txt = np.load(text)  # whole file in memory, as the authors load each pkl whole
    img = np.load(image)
    n_t, n_i = txt.shape[0], img.shape[0]
    s_t, s_i = np.zeros(txt.shape[1]), np.zeros(txt.shape[1])
    for s in range(0, n_t, CHUNK):  # pass 1: means
        s_t += _l2_normalize(txt[s : s + CHUNK]).sum(0)
    for s in range(0, n_i, CHUNK):
        s_i += _l2_normalize(img[s : s + CHUNK]).sum(0)
    mu_t, mu_i = (s_t / n_t).astype(np.float32), (s_i / n_i).astype(np.float32)
    e_t = sum(float(np.sum((_l2_normalize(txt[s : s + CHUNK]) - mu_t) ** 2)) for s in range(0, n_t, CHUNK))
    e_i = sum(float(np.sum((_l2_normalize(img[s : s + CHUNK]) - mu_i) ** 2)) for s in range(0, n_i, CHUNK))
    scale = np.sqrt((e_i / n_i) / (e_t / n_t + 1e-10))  # pass 2: traces
    mu_hat = np.zeros(txt.shape[1])
    for s in range(0, n_t, CHUNK):  # pass 3: mean after the first projection
        mu_hat += _l2_normalize((_l2_normalize(txt[s : s + CHUNK]) - mu_t) * scale + mu_i).sum(0)
    mu_hat /= n_t
    result = np.empty_like(txt)  # pass 4: every item rewritten in memory, then saved
    for s in range(0, n_t, CHUNK):
        x_hat = _l2_normalize((_l2_normalize(txt[s : s + CHUNK]) - mu_t) * scale + mu_i)
        result[s : s + CHUNK] = _l2_normalize(x_hat - mu_hat + mu_i).astype(np.float32)
    np.save(out, result)
    return {"seconds": time.perf_counter() - t0, "scale": float(scale)}


MODES = {
    "plain": mode_plain,
    "plain_write": mode_plain_write,
    "ours": mode_ours,
    "ours_nowrite": mode_ours_nowrite,
    "reference": mode_reference,
}


def child(mode: str, text: Path, image: Path, out: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--text", str(text), "--image", str(image), "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--image-rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--dir", default="/tmp/modgap_bench")
    ap.add_argument("--reference-rows", type=int, help="run the reference on a prefix file of this many rows")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--child")
    ap.add_argument("--text")
    ap.add_argument("--image")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.child:
        res = MODES[args.child](Path(args.text), Path(args.image), Path(args.out))
        res["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(res))
        return

    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    text = d / f"text_{args.rows}x{args.dim}.npy"
    image = d / f"image_{args.image_rows}x{args.dim}.npy"
    make_file(text, args.rows, args.dim, 0, 1)
    make_file(image, args.image_rows, args.dim, 1, 0)
    out = d / "substitutes.npy"
    out.unlink(missing_ok=True)  # neither timed run pays for deleting an old output
    child("plain", text, image, out)  # warm the page cache
    plain = child("plain", text, image, out)
    plain_write = child("plain_write", text, image, d / "plain_copy.npy")
    (d / "plain_copy.npy").unlink(missing_ok=True)
    ours_nowrite = child("ours_nowrite", text, image, out)
    ours = child("ours", text, image, out)
    ours_out = np.load(out, mmap_mode="r")
    text_gb = args.rows * args.dim * 4 / 1e9
    img_frac = args.image_rows / args.rows
    # The same bytes as plain passes: fit = 2 text reads + 1 image read; transform = 1 read + 1 write.
    eq_nowrite = (3 + img_frac) * plain["seconds"]
    eq_write = (2 + img_frac) * plain["seconds"] + plain_write["seconds"]
    result = {
        "rows": args.rows,
        "image_rows": args.image_rows,
        "dim": args.dim,
        "text_gb": text_gb,
        "plain_pass": plain,
        "plain_pass_with_write": plain_write,
        "ours": ours,
        "ours_without_write": ours_nowrite,
        "ours_passes": "text x3 (2 fit + 1 transform, which also writes the output), image x1",
        "throughput_ratio_vs_plain_same_bytes": eq_write / ours["seconds"],
        "throughput_ratio_vs_plain_same_bytes_no_write": eq_nowrite / ours_nowrite["seconds"],
        "fit_throughput_ratio_vs_plain": (2 + img_frac) * plain["seconds"] / ours["fit_seconds"],
        "ours_vs_one_plain_pass": ours["seconds"] / plain["seconds"],
        "load_average": os.getloadavg(),
    }
    if not args.skip_reference:
        ref_text = text
        if args.reference_rows and args.reference_rows < args.rows:
            ref_text = d / f"text_{args.reference_rows}x{args.dim}.npy"
            if not ref_text.exists():
                np.save(ref_text, np.load(text, mmap_mode="r")[: args.reference_rows])
        ref_out = d / "substitutes_reference.npy"
        ref_out.unlink(missing_ok=True)
        ref = child("reference", ref_text, image, ref_out)
        ref_rows = np.load(ref_text, mmap_mode="r").shape[0]
        factor = args.rows / ref_rows
        result["reference"] = {**ref, "rows": ref_rows, "seconds_scaled_to_rows": ref["seconds"] * factor}
        result["speedup_vs_reference"] = ref["seconds"] * factor / ours["seconds"]
        result["memory_ratio_ours_over_reference"] = ours["peak_rss_mb"] / ref["peak_rss_mb"]
        ref_res = np.load(ref_out, mmap_mode="r")
        k = min(ref_rows, 100_000)
        result["max_abs_diff_vs_reference_first_rows"] = float(np.abs(ref_res[:k] - ours_out[:k]).max())
        if ref_rows != args.rows:
            result["note"] = "reference run on a prefix (its statistics differ), time scaled linearly"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
