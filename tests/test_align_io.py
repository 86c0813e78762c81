"""Estimator contract: save -> load -> identical transform, streaming from .npy, bad input errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modgap.align import REGISTRY, AlignMethod, make
from modgap.errors import ConfigError, InvalidEmbeddingsError, InvalidStateError, MissingInputError
from test_align_data import gapped

X = gapped(600, seed=1, modality="image")
Y = gapped(500, seed=2)
FAST_ANISO = {"stage1_steps": 20, "stage1_batch": 128, "stage2_epochs": 2, "stage2_batch": 128, "rank": 4}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_save_load_transform_identical(name, tmp_path):
    params = FAST_ANISO if REGISTRY[name].cls.method == "anisoalign" else {}
    model = make(name, params).fit(X, Y)
    before = model.transform(Y[:100], stream="test")
    model.save(tmp_path / name)
    loaded = AlignMethod.load(tmp_path / name)
    assert loaded.name == name
    assert np.array_equal(loaded.transform(Y[:100], stream="test"), before)
    assert before.dtype == np.float32 and before.shape == (100, X.shape[1])


def test_npy_streaming_equals_array_and_transform_to_file(tmp_path):
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y)
    a = make("realign", {"chunk_rows": 64}).fit(tmp_path / "x.npy", tmp_path / "y.npy")
    b = make("realign").fit(X, Y)
    assert np.allclose(a.transform(Y), b.transform(Y), atol=1e-7)
    assert a.meta_["inputs"]["text"]["path"].endswith("y.npy")
    a.transform_to_file(tmp_path / "y.npy", tmp_path / "out" / "z.npy")
    assert np.array_equal(np.load(tmp_path / "out" / "z.npy"), a.transform(Y))


def test_bad_inputs_give_clear_errors():
    bad = Y.copy()
    bad[7, 3] = np.nan
    with pytest.raises(InvalidEmbeddingsError, match="NaN or Inf, first at row 7"):
        make("realign").fit(X, bad)
    zero = Y.copy()
    zero[11] = 0
    with pytest.raises(InvalidEmbeddingsError, match=r"zero vector.*row 11"):
        make("coral").fit(X, zero)
    with pytest.raises(InvalidEmbeddingsError, match="text statistics set: expected dimension 16, got 8"):
        make("c3").fit(X, Y[:, :8])
    with pytest.raises(InvalidEmbeddingsError, match="needs at least 17 rows at dimension 16"):
        make("coral").fit(X[:1], Y[:1])
    model = make("liang").fit(X, Y)
    with pytest.raises(InvalidEmbeddingsError, match="texts to transform: expected dimension 16"):
        model.transform(Y[:, :5])
    with pytest.raises(InvalidEmbeddingsError, match="2-D"):
        model.transform(Y[0])
    with pytest.raises(ConfigError, match="unknown parameter"):
        make("realign", {"bogus": 1})
    with pytest.raises(ConfigError, match="unknown alignment method"):
        make("nope")
    with pytest.raises(InvalidEmbeddingsError, match="does not exist"):
        make("realign").fit("/nonexistent/x.npy", Y)


def test_transform_never_modifies_its_input():
    y64 = Y.astype(np.float64) * 3.0  # not unit norm, so in-place normalisation would show
    keep = y64.copy()
    for name in ("realign", "anisoalign", "c3", "blockwise"):
        params = FAST_ANISO if name == "anisoalign" else {}
        make(name, params).fit(X, y64).transform(y64)
        assert np.array_equal(y64, keep), name


def test_load_errors_name_the_file_and_what_is_wrong(tmp_path):
    with pytest.raises(MissingInputError, match=r"nowhere/state.json: fitted alignment state does not exist"):
        AlignMethod.load(tmp_path / "nowhere")
    make("realign").fit(X, Y).save(tmp_path / "m")
    state_json, arrays = tmp_path / "m" / "state.json", tmp_path / "m" / "state.safetensors"
    good_json, good_arrays = state_json.read_text(), arrays.read_bytes()
    arrays.write_bytes(b"not safetensors")
    with pytest.raises(InvalidStateError, match=r"m/state.safetensors: unreadable safetensors arrays"):
        AlignMethod.load(tmp_path / "m")
    arrays.write_bytes(good_arrays)
    state_json.write_text("{")
    with pytest.raises(InvalidStateError, match=r"m/state.json: unreadable alignment state"):
        AlignMethod.load(tmp_path / "m")
    for edit, message in [
        (lambda d: d.pop("params"), "lacks the key 'params'"),
        (lambda d: d.update(method=["realign"]), "'method' must be a JSON string"),
        (lambda d: d.update(method="nope"), "unknown alignment method class 'nope'"),
        (lambda d: d["params"].update(bogus=1), r"unknown parameter\(s\) \['bogus'\]"),
        (lambda d: d["params"].update(eps=-1.0), "eps must be a number >= 0"),
        (lambda d: d["arrays"].update(extra=[3]), r"state.safetensors: missing arrays \['extra'\]"),
    ]:
        info = json.loads(good_json)
        edit(info)
        state_json.write_text(json.dumps(info))
        with pytest.raises(InvalidStateError, match=message):
            AlignMethod.load(tmp_path / "m")
    state_json.write_text(good_json)
    with pytest.raises(InvalidStateError, match="holds a 'realign' state, not 'coral'"):
        REGISTRY["coral"].cls.load(tmp_path / "m")
    assert np.array_equal(AlignMethod.load(tmp_path / "m").transform(Y), make("realign").fit(X, Y).transform(Y))
