"""Bit-identity of every alignment method across refactors: digests of substitutes and saved state.

``GOLDEN`` holds sha256 digests computed by the code *before* the scikit-learn contract refactor
(explicit keyword arguments; commit 7685ad3) on the synthetic data below. Each digest covers the
inductive and the transductive float32 substitutes (two noise streams) and the bytes of both saved
state files, so a changed parameter default, a changed noise draw or a changed ``state.json`` fails.
Float digests depend on the numeric libraries (OpenBLAS kernels, torch), so they are compared only
on the platform that produced them (``PLATFORM``); elsewhere the test is skipped with that reason.

Regenerate (only when a numeric change is intended): ``PYTHONPATH=src python tests/test_align_golden.py``.
"""

from __future__ import annotations

import hashlib
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modgap.align import make
from modgap.align.base import STATE_ARRAYS, STATE_JSON
from test_align_data import gapped

X = gapped(300, seed=11, modality="image")
Y = gapped(260, seed=12)
FAST_ANISO = {"stage1_steps": 20, "stage1_batch": 64, "stage2_epochs": 1, "stage2_batch": 64, "rank": 4}

# Registry names with their defaults, then non-default settings that reach every parameter branch.
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    **{
        n: (n, {})
        for n in (
            "identity",
            "unicorn",
            "liang",
            "c3",
            "capdec",
            "capdec_offset",
            "decap",
            "standardise",
            "coral",
            "blockwise",
            "realign",
            "realign_anchor",
            "realign_anchor_trace",
        )
    },
    **{n: (n, FAST_ANISO) for n in ("anisoalign", "aniso_global_init", "aniso_refine")},
    "liang/lambda": ("liang", {"shift_lambda": 0.5}),
    "c3/official": ("c3", {"variant": "official", "seed": 3}),
    "c3/sigma": ("c3", {"sigma": 0.05}),
    "capdec/ball": ("capdec", {"noise": "uniform_ball", "sigma": 0.2}),
    "decap/memory": ("decap", {"memory_size": 100, "seed": 5, "block_rows": 7, "tau": 0.05}),
    "standardise/eigen": ("standardise", {"basis": "eigen", "recalibrate": True}),
    "coral/recal": ("coral", {"recalibrate": True, "ridge_scale": 1e-3}),
    "blockwise/rank": ("blockwise", {"rank": 4, "centred": True}),
    "realign/f32": ("realign", {"float32_means": True, "chunk_rows": 50}),
    "aniso/haar": ("anisoalign", {**FAST_ANISO, "mixing": "haar", "v_basis": "ambient", "seed": 2}),
}

PLATFORM = "x86_64 numpy 2.4.6 torch 2.14.1+cu130"
GOLDEN: dict[str, str] = {
    "aniso/haar": "e6f0d51519fa605d8ba5484588e41a6dd275cde59b4db1ec62e0a6b755041ed3",
    "aniso_global_init": "cc8fef0e42599ece4a33ee2e7b5e882a11e9aad1cefe16e3bb12653ff2bf4d63",
    "aniso_refine": "f3640e52e3efc5db5144015e30d40d1a172cfb83ed160a5c88def4533322b9ae",
    "anisoalign": "3f6c4c71db44ba5c04cdcf9f779f2331513c5d76da5d4c2fcfe5cf502172bcd5",
    "blockwise": "623a837a764d5db75ba4b5da410cebe30d0c6bc2673ae111cf79d9b4c01ef06c",
    "blockwise/rank": "025969d40bd65b729bf800b4c2a08f12db51b3d4c4bfb8e2c4e8e6836f9c655a",
    "c3": "cbf1c710ea3a93c1b677ffd5ea9d58cc549b3dbfff033d9dd9ef3fd1eb89d78a",
    "c3/official": "1aa8125ec35b8217fef8af4868efd2a69cf6a697ad94f6f437005ac51bccd9e3",
    "c3/sigma": "705b30a919ed7793f3965295ad9ab96885e6ccf3b1f56c9d9ad219f0dff2d0aa",
    "capdec": "5868fe6cd12079d85660bcd2c049abf7d8b1720990d601c783cd19c96bbb94e0",
    "capdec/ball": "3046056b101a4b4cf998d7e844e722a97c1e4c623fbfb418ebe267cc2b6dbd15",
    "capdec_offset": "04b586afdef1d2e2c6f591d85bc6279a3d579ee52c5e0fb9cf09e5e916637f69",
    "coral": "6502cdd3c58277c7d8bb39e130e59057f0ec3967203d3cb178bdd87c9144acc6",
    "coral/recal": "bfe799f3af5493e7e5d51b1bb47296cdbd6f752b7fcc038288966cf2a1f9eb44",
    "decap": "2f35dacd8a2b388e8bc5c490be0100594b06b6439179b1d4183d7c431cf302e3",
    "decap/memory": "938dbbd8b2af3ad25aba8bb1f8ca3ecf1b420dc31635b43e24141ad76b2252bf",
    "identity": "51f609e3f4939848f48462413e210466072fc1bdc45e854d7eff231c2e31c869",
    "liang": "707bf0f5083be549cf01c20f25f5c1799f5564b1b58decefd5feb64fac22e581",
    "liang/lambda": "a8b177aefb701c196660fa8d51222226bcee4dc28a404dc5561d8b5d1b91b16a",
    "realign": "ecffd8b2df14bb09856b1111b0e146ea2afa9e2ff727b83b18bce614d243811d",
    "realign/f32": "326fa5ee3ee5fac3a41ed3673bffcbdba5529c1cf0adef75fffe23ca2638461e",
    "realign_anchor": "04da8dfb31d74cdf2acb87c2339b7bf501b8dd4b525e8f843078786f178475db",
    "realign_anchor_trace": "ce49fb6f864c5edec30a27879a54a584f7658d4bb803079c8c9903a77149e378",
    "standardise": "bdd16e9f66d7c6ffb08d0e4afd0bfb589161b44c8821d285e8abc40eac048f0c",
    "standardise/eigen": "d677515551eae946e113a106aa6990f8fb3ecfb1561596c11db218574b641d44",
    "unicorn": "7a5ebfa1cc8629159648f3f73b64c2c5934319d546b138c4eb90f165510d0d0a",
}


def platform_key() -> str:
    import torch

    return f"{platform.machine()} numpy {np.__version__} torch {torch.__version__}"


def digest(name: str, params: dict[str, Any]) -> str:
    model = make(name, params).fit(X, Y)
    h = hashlib.sha256()
    h.update(model.transform(Y[:120], stream="test").tobytes())
    h.update(model.transform(Y[100:], transductive=True, stream="val").tobytes())
    with tempfile.TemporaryDirectory() as tmp:
        model.save(tmp)
        for file in (STATE_ARRAYS, STATE_JSON):
            h.update((Path(tmp) / file).read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("case", sorted(CASES))
def test_substitutes_and_state_match_the_pre_refactor_code(case):
    if platform_key() != PLATFORM:
        pytest.skip(f"golden digests were computed on {PLATFORM}, this is {platform_key()}")
    name, params = CASES[case]
    assert digest(name, params) == GOLDEN[case], f"{case}: substitutes or saved state differ from the old code"


if __name__ == "__main__":
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):  # as tests/conftest.py
        print(f"PLATFORM = {platform_key()!r}", file=sys.stderr)
        print("GOLDEN: dict[str, str] = {")
        for case in sorted(CASES):
            print(f"    {case!r}: {digest(*CASES[case])!r},")
        print("}")
