"""scikit-learn contract of every registered alignment method: get_params, set_params, clone, checks.

Which ``sklearn.utils.estimator_checks`` apply (the list is asserted below, so it cannot go stale):

* Run and pass for every registry name: the API checks ``check_estimator_cloneable``,
  ``check_estimator_tags_renamed``, ``check_valid_tag_types``, ``check_estimator_repr``,
  ``check_no_attributes_set_in_init``, ``check_estimators_unfitted`` and ``check_mixin_order``
  (``check_estimator(..., legacy=False)``), and the parameter checks ``check_get_params_invariance``,
  ``check_set_params`` and ``check_parameters_default_constructible``.
* Do not apply, and are asserted to fail (``NOT_APPLICABLE``):
  - ``check_fit_score_takes_y``, ``check_estimators_overwrite_params``,
    ``check_dont_overwrite_parameters``, ``check_estimators_fit_returns_self``,
    ``check_readonly_memmap_input``, ``check_n_features_in_after_fitting`` and
    ``check_positive_only_tag_during_fit`` call ``fit(X, y)`` with ``y`` a 1-D target. Here
    ``fit(image_stats, text_stats)`` takes two *unpaired* 2-D sets, so ``y`` is rejected. What they
    test is tested here on two-set input instead: fit returns self, fit changes no parameter, a
    read-only memmap is accepted, a clone refits to the same substitutes.
  - ``check_do_not_raise_errors_in_init_or_set_params``: scikit-learn validates lazily in ``fit``;
    these methods validate in the constructor and ``set_params`` on purpose, so that a bad config
    fails before a long pipeline run (a ``ConfigError`` naming the method and the parameter).
* Not run: the legacy data checks (``legacy=True``: dtypes, NaN/inf handling, transformer and
  pipeline checks). All of them fit on ``(X, y)``; ``Pipeline`` chains ``fit(X, y)`` steps, which an
  unpaired two-set fit is not.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_estimator,
    check_get_params_invariance,
    check_parameters_default_constructible,
    check_set_params,
)
from sklearn.utils.validation import check_is_fitted

from modgap.align import REGISTRY, AlignMethod, make
from modgap.align.base import STATE_ARRAYS, STATE_JSON, Param
from modgap.align.classes import CLASS_PATHS, method_class
from modgap.errors import ConfigError
from modgap.paramcheck import ParamError
from test_align_data import gapped

X = gapped(200, seed=21, modality="image")
Y = gapped(180, seed=22)
FAST_ANISO = {"stage1_steps": 10, "stage1_batch": 64, "stage2_epochs": 1, "stage2_batch": 64, "rank": 4}
NAMES = sorted(REGISTRY)

API_CHECKS = {
    "check_estimator_cloneable",
    "check_estimator_tags_renamed",
    "check_valid_tag_types",
    "check_estimator_repr",
    "check_no_attributes_set_in_init",
    "check_estimators_unfitted",
    "check_mixin_order",
}
FIT_XY = "fit(X, y) with a 1-D y; fit here takes two unpaired 2-D sets (image stats, text stats)"
NOT_APPLICABLE = {
    **dict.fromkeys(
        (
            "check_fit_score_takes_y",
            "check_estimators_overwrite_params",
            "check_dont_overwrite_parameters",
            "check_estimators_fit_returns_self",
            "check_readonly_memmap_input",
            "check_n_features_in_after_fitting",
            "check_positive_only_tag_during_fit",
        ),
        FIT_XY,
    ),
    "check_do_not_raise_errors_in_init_or_set_params": "constructor and set_params validate on purpose",
}


def fast(name: str) -> dict:
    return FAST_ANISO if REGISTRY[name].method == "anisoalign" else {}


@pytest.mark.parametrize("name", NAMES)
def test_sklearn_api_checks(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(
            make(name), legacy=False, expected_failed_checks=NOT_APPLICABLE, on_fail=None, on_skip=None
        )
    status = {r["check_name"]: r["status"] for r in results}
    assert set(status) == API_CHECKS | set(NOT_APPLICABLE), "sklearn's API check list changed: update the docstring"
    failed = {c: r["exception"] for r in results if (c := r["check_name"]) in API_CHECKS and r["status"] != "passed"}
    assert not failed, failed
    assert all(status[c] == "xfail" for c in NOT_APPLICABLE), {c: status[c] for c in NOT_APPLICABLE}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "check", [check_get_params_invariance, check_set_params, check_parameters_default_constructible]
)
def test_sklearn_parameter_checks(name, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # check_set_params warns that validation could wait until fit
        check(name, make(name))


@pytest.mark.parametrize("name", NAMES)
def test_get_params_lists_exactly_params_with_the_preset(name):
    entry = REGISTRY[name]
    params = make(name).get_params()
    assert sorted(params) == sorted(entry.cls.PARAMS)
    assert params == {**{k: p.default for k, p in entry.cls.PARAMS.items()}, **entry.preset}
    assert make(name).params == params and list(make(name).params) == list(entry.cls.PARAMS)


@pytest.mark.parametrize("name", NAMES)
def test_clone_is_unfitted_with_equal_params_and_name(name):
    est = make(name, fast(name))
    for fitted in (False, True):
        if fitted:
            est.fit(X, Y)
            check_is_fitted(est)
        copy = clone(est)
        assert type(copy) is type(est) and copy is not est
        assert copy.get_params() == est.get_params() and copy.name == name
        with pytest.raises(NotFittedError):
            check_is_fitted(copy)


@pytest.mark.parametrize("name", NAMES)
def test_refitted_clone_gives_identical_substitutes_and_state(name, tmp_path):
    est = make(name, fast(name)).fit(X, Y)
    twin = clone(est).fit(X, Y)
    for kwargs in ({"stream": "test"}, {"transductive": True, "stream": "val"}):
        assert np.array_equal(twin.transform(Y[:50], **kwargs), est.transform(Y[:50], **kwargs))
    est.save(tmp_path / "a")
    twin.save(tmp_path / "b")
    for file in (STATE_ARRAYS, STATE_JSON):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_changes_no_parameter(name):
    """The two-set analogues of check_estimators_fit_returns_self / check_dont_overwrite_parameters."""
    est = make(name, fast(name))
    before = clone(est).get_params()
    assert est.fit(X, Y) is est
    assert est.get_params() == before


def test_read_only_memmap_input_is_accepted(tmp_path):
    """The two-set analogue of check_readonly_memmap_input."""
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y)
    x, y = np.load(tmp_path / "x.npy", mmap_mode="r"), np.load(tmp_path / "y.npy", mmap_mode="r")
    for name in ("realign", "coral", "c3", "decap"):
        assert np.array_equal(make(name).fit(x, y).transform(y), make(name).fit(X, Y).transform(Y)), name


# One value per parameter kind that the schema or a method's own check rejects.
BAD_VALUES = [-1, 0, 1.5, -np.inf, np.nan, None, True, "nope", [1]]


@pytest.mark.parametrize("method", sorted(CLASS_PATHS))
def test_set_params_validates_like_the_constructor(method):
    cls = method_class(method)
    for key in cls.PARAMS:
        for value in BAD_VALUES:
            try:
                cls(**{key: value})
            except ConfigError as exc:
                expected: Exception | None = exc
            else:
                expected = None
            est = cls()
            if expected is None:
                assert est.set_params(**{key: value}) is est and est.get_params()[key] is value
                continue
            with pytest.raises(type(expected)) as got:
                est.set_params(**{key: value})
            assert str(got.value) == str(expected) and f"'{method}'" in str(expected) and key in str(expected)
            assert est.get_params() == cls().get_params(), f"{method}.{key}: a failed set_params changed params"
    with pytest.raises(ConfigError, match=rf"align method '{method}': unknown parameter\(s\) \['bogus'\]"):
        cls().set_params(bogus=1)
    with pytest.raises(ConfigError, match=rf"align method '{method}': unknown parameter\(s\) \['bogus'\]"):
        cls(bogus=1)


def test_a_rejected_value_is_a_value_error_as_in_sklearn():
    with pytest.raises(ValueError, match="chunk_rows must be an integer >= 1"):
        make("realign").set_params(chunk_rows=0)
    assert issubclass(ParamError, ConfigError)


def test_set_params_on_a_fitted_estimator_keeps_the_state_until_refit():
    est = make("c3").fit(X, Y)
    before = est.transform(Y[:20], stream="s")
    est.set_params(noise_norm=0.0)
    assert np.array_equal(
        est.fit(X, Y).transform(Y[:20], stream="s"),
        make("c3", {"noise_norm": 0.0}).fit(X, Y).transform(Y[:20], stream="s"),
    )
    assert not np.array_equal(before, est.transform(Y[:20], stream="s"))


def test_a_signature_that_drifts_from_params_is_rejected_when_the_class_is_defined():
    with pytest.raises(TypeError, match="differ from PARAMS"):

        class Missing(AlignMethod):
            method = "missing"
            PARAMS: ClassVar[dict[str, Param]] = {"chunk_rows": Param(10, ""), "eps": Param(1.0, "")}

            def __init__(self, *, chunk_rows: int = 10) -> None:
                self._set_init_params(locals())

    with pytest.raises(TypeError, match=r"eps must be keyword-only with default 1\.0"):

        class WrongDefault(AlignMethod):
            method = "wrong"
            PARAMS: ClassVar[dict[str, Param]] = {"chunk_rows": Param(10, ""), "eps": Param(1.0, "")}

            def __init__(self, *, chunk_rows: int = 10, eps: float = 2.0) -> None:
                self._set_init_params(locals())

    with pytest.raises(TypeError, match="shadows the class attribute"):

        class Shadow(AlignMethod):
            method = "shadow"
            PARAMS: ClassVar[dict[str, Param]] = {"chunk_rows": Param(10, ""), "fit": Param(1, "")}

            def __init__(self, *, chunk_rows: int = 10, fit: int = 1) -> None:
                self._set_init_params(locals())
