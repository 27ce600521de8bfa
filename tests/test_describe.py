"""describe / format_description."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ncf.data.describe import describe, format_description
from ncf.data.io import load_interactions


def small(**extra):
    df = pd.DataFrame(
        {
            "u": [1, 1, 1, 2, 2, 3],
            "i": ["a", "b", "c", "a", "b", "a"],
            "r": [5, 4, 3, 5, 1, 5],
            "t": [0, 86400, 2 * 86400, 10, 20, 30],
        }
    )
    return load_interactions(df, user="u", item="i", **extra)


def test_describe_counts_and_density():
    d = describe(small())
    assert (d["users"], d["items"], d["interactions"]) == (3, 3, 6)
    assert d["density"] == pytest.approx(6 / 9)
    assert d["active_users"] == 3 and d["active_items"] == 3
    # per-user counts 3, 2, 1; per-item counts a=3, b=2, c=1
    assert d["user_counts"] == {"min": 1.0, "25%": 1.5, "50%": 2.0, "75%": 2.5, "max": 3.0, "mean": 2.0}
    assert d["item_counts"] == d["user_counts"]
    assert "ratings" not in d and "timestamps" not in d


def test_describe_ratings_and_timestamps():
    d = describe(small(rating="r", timestamp="t"))
    assert d["ratings"] == {"1": 1, "3": 1, "4": 1, "5": 3}
    assert d["rating_mean"] == pytest.approx(23 / 6)
    assert d["timestamps"]["min"] == 0.0 and d["timestamps"]["max"] == 2 * 86400.0
    assert d["timestamps"]["min_utc"] == "1970-01-01 00:00:00 UTC"
    assert d["timestamps"]["max_utc"] == "1970-01-03 00:00:00 UTC"
    json.dumps(d)  # JSON-serialisable


def test_describe_binned_histogram_for_continuous_ratings():
    rng = np.random.default_rng(0)
    n = 500
    df = pd.DataFrame({"u": rng.integers(0, 50, n), "i": np.arange(n), "r": rng.random(n)})
    d = describe(load_interactions(df, user="u", item="i", rating="r"))
    assert len(d["ratings"]) == 10 and sum(d["ratings"].values()) == n
    assert list(d["ratings"])[-1].endswith("]")


def test_describe_subset_counts_only_active_users():
    data = small()
    sub = data._subset(data.user_idx == 0)  # user 1 only; maps still hold 3 users
    d = describe(sub)
    assert d["users"] == 3 and d["active_users"] == 1
    assert d["user_counts"]["max"] == 3.0 and d["item_counts"]["max"] == 1.0
    assert "with interactions" in format_description(d)


def test_describe_empty_subset():
    data = small()
    d = describe(data._subset(np.zeros(len(data), dtype=bool)))
    assert d["interactions"] == 0 and d["user_counts"] is None
    format_description(d)  # does not raise


def test_format_description():
    text = format_description(describe(small(rating="r", timestamp="t")))
    lines = text.splitlines()
    assert lines[0].startswith("source") and "DataFrame" in lines[0]
    assert any(ln.startswith("users") and ln.endswith(" 3") for ln in lines)
    assert "density" in text and "66.6667%" in text
    assert "per user" in text and "median" not in text and "50% 2" in text
    assert "5: 3 (50.0%)" in text
    assert "1970-01-01 00:00:00 UTC .. 1970-01-03 00:00:00 UTC" in text
    assert not text.endswith("\n")


def test_format_description_tolerates_missing_keys():
    assert format_description({}) == ""
    assert format_description({"users": 1234}) == "users  1,234"


@pytest.mark.movielens
def test_describe_ml100k(ml100k):
    d = describe(ml100k)
    assert (d["users"], d["items"], d["interactions"]) == (943, 1682, 100_000)
    assert d["user_counts"]["min"] == 20.0  # every ML-100k user rated at least 20 movies
    assert d["ratings"] == {"1": 6110, "2": 11370, "3": 27145, "4": 34174, "5": 21201}
    assert d["timestamps"]["min_utc"].startswith("1997-09-20")
    assert "100,000" in format_description(d)
