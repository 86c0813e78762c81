"""Seeded, disjoint splits by image and the stats split's image/text halves."""

from __future__ import annotations

import pandas as pd
import pytest

from modgap.data.splits import assign_splits, split_sizes, subsample
from modgap.errors import ConfigError

FRACTIONS = {"stats": 0.3, "diag": 0.15, "train": 0.4, "test": 0.15}


def items(n: int) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"item{i:04d}" for i in range(n)], "caption": [f"c{i}" for i in range(n)]})


def test_splits_disjoint_cover_everything_and_deterministic() -> None:
    table = items(101)
    a = assign_splits(table, FRACTIONS, seed=7)
    b = assign_splits(table.sample(frac=1, random_state=3), FRACTIONS, seed=7)  # input order is irrelevant
    assert len(a) == 101 and a["id"].is_unique
    assert set(a["id"]) == set(table["id"])
    pd.testing.assert_frame_equal(a, b)
    assert a["split"].value_counts().to_dict() == split_sizes(FRACTIONS, 101)
    c = assign_splits(table, FRACTIONS, seed=8)
    assert not (c["split"].to_numpy() == a["split"].to_numpy()).all()


def test_stats_roles_are_halves_of_the_stats_split() -> None:
    out = assign_splits(items(100), FRACTIONS, seed=0)
    stats = out[out["split"] == "stats"]
    assert stats["stats_role"].value_counts().to_dict() == {"image": 15, "text": 15}
    assert out.loc[out["split"] != "stats", "stats_role"].isna().all()
    odd = assign_splits(items(10), {"stats": 5, "diag": 1, "train": 2, "test": 2}, seed=0)
    assert odd["stats_role"].value_counts().to_dict() == {"image": 3, "text": 2}


def test_sizes_from_fractions_and_counts() -> None:
    assert sum(split_sizes(FRACTIONS, 7).values()) == 7
    assert split_sizes({"stats": 4, "diag": 1, "train": 0, "test": 2}, 10) == {
        "stats": 4,
        "diag": 1,
        "train": 0,
        "test": 2,
    }
    out = assign_splits(items(10), {"stats": 4, "diag": 1, "train": 0, "test": 2}, seed=1)
    assert len(out) == 7  # the 3 left-over items are not used
    assert split_sizes({"stats": 0.5, "diag": 0.0, "train": 0.25, "test": 0.0}, 8) == {
        "stats": 4,
        "diag": 0,
        "train": 2,
        "test": 0,
    }


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"stats": 8, "diag": 4, "train": 0, "test": 0}, "need 12 items, the dataset has 10"),
        ({"stats": 0.8, "diag": 0.4, "train": 0.0, "test": 0.0}, "sum to at most 1"),
        ({"stats": 0.5, "diag": 0.5, "train": 0.0}, "expected exactly"),
    ],
)
def test_bad_split_specs_name_the_key(spec: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=f"key 'splits'.*{message}"):
        assign_splits(items(10), spec, seed=0)


def test_subsample_is_seeded() -> None:
    table = items(50)
    a, b = subsample(table, 20, seed=3), subsample(table.iloc[::-1], 20, seed=3)
    assert list(a["id"]) == list(b["id"]) and len(a) == 20
    assert subsample(table, None, seed=3) is table
