"""Issue 16, loading data: ids are never silently a different id, odd sources are read once.

Each test names the defect it pins (numbers as in docs/RELIABILITY.md, "Hostile inputs").
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ncf import load_interactions
from ncf.data.ids import IdMap
from ncf.errors import DataError


# -- defect 2: ids beyond int64 never wrap -------------------------------------------------------------
def test_uint64_parquet_ids_beyond_int64_stay_exact(tmp_path):
    big = 2**63 + 1
    pq.write_table(pa.table({"u": pa.array([big, 5, 7], pa.uint64()), "i": [1, 2, 3]}), tmp_path / "u.parquet")
    d = load_interactions(tmp_path / "u.parquet", user="u", item="i")
    assert d.user_map.kind == "str"
    assert sorted(d.user_map.ids.tolist()) == sorted([str(big), "5", "7"])  # before: -9223372036854775807
    assert -9223372036854775807 not in d.user_map.ids.tolist()


def test_uint64_ids_within_int64_stay_ints(tmp_path):
    pq.write_table(pa.table({"u": pa.array([2**63 - 1, 5], pa.uint64()), "i": [1, 2]}), tmp_path / "u.parquet")
    d = load_interactions(tmp_path / "u.parquet", user="u", item="i")
    assert d.user_map.kind == "int" and sorted(d.user_map.ids.tolist()) == [5, 2**63 - 1]


def test_python_ints_beyond_int64_in_a_frame_are_exact_text():
    df = pd.DataFrame({"u": pd.Series([2**64, 3], dtype=object), "i": [1, 2]})
    d = load_interactions(df, user="u", item="i")  # before: OverflowError
    assert sorted(d.user_map.ids.tolist()) == ["18446744073709551616", "3"]


# -- NaN-looking, control-character and invisible ids (decided: see RELIABILITY.md) -------------------
def test_nan_in_a_column_of_int_ids_is_a_missing_id(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("user,item\n1,5\nNaN,6\n3,7\n")
    with pytest.raises(DataError, match=r"missing id \('NaN'\) at row 2"):  # before: user "NaN", every id text
        load_interactions(p, user="user", item="item")
    p.write_text("user,item\nana,5\nNA,6\n")  # among string ids "NA" is an ordinary id (e.g. a country code)
    assert sorted(load_interactions(p, user="user", item="item").user_map.ids.tolist()) == ["NA", "ana"]


@pytest.mark.parametrize(
    "cell, problem",
    [('"a\x00b"', "control character '\\x00'"), ('"a\x01"', "control character"), ("\u200b", "empty or only")],
)
def test_control_characters_and_invisible_ids_are_refused(tmp_path, cell, problem):
    p = tmp_path / "r.csv"
    p.write_bytes(f"user,item\nana,5\n{cell},6\n".encode())
    with pytest.raises(DataError, match=f"user column 'user': id at row 2 .*{re.escape(problem)}"):  # before: accepted
        load_interactions(p, user="user", item="item")


def test_lone_surrogate_ids_are_refused():
    df = pd.DataFrame({"u": pd.Series(["ana", "\ud800"], dtype=object), "i": [1, 2]})
    with pytest.raises(DataError, match="lone surrogate"):  # before: loaded, then save() failed to encode it
        load_interactions(df, user="u", item="i")
    with pytest.raises(DataError, match="lone surrogate"):
        IdMap(np.array(["\udcff"], dtype=object))


# -- one integer-parsing rule for ids typed at the CLI or sent over HTTP --------------------------------
@pytest.mark.parametrize(
    "text", ["+196", "1_96", " 196", "196 ", "0196", "\uff11\uff19\uff16", "\u0661\u0669\u0666", "196.0"]
)
def test_only_canonical_ascii_integers_are_int_ids(text):
    from ncf.data.ids import parse_int_id

    assert parse_int_id(text) is None
    m = IdMap(np.array([196, 5]))
    assert m.coerce([text]) == [text]  # stays text: an unknown id, never user 196


def test_int_ids_parse_exactly_within_int64():
    from ncf.data.ids import parse_int_id

    assert parse_int_id("196") == 196 and parse_int_id("-3") == -3 and parse_int_id("0") == 0
    assert parse_int_id(str(2**63 - 1)) == 2**63 - 1 and parse_int_id(str(-(2**63))) == -(2**63)
    assert parse_int_id(str(2**63)) is None and parse_int_id("-0") is None
    m = IdMap(np.array([196, 5]))
    assert m.coerce(["99999999999999999999999", 2**70]) == ["99999999999999999999999", str(2**70)]
    with pytest.raises(KeyError):  # UnknownIdError, not OverflowError
        m.index(m.coerce([2**70]))


def test_id_text_problem():
    from ncf.data.ids import id_text_problem

    assert id_text_problem("ana") is None and id_text_problem("日本") is None and id_text_problem("a b") is None
    assert "control" in id_text_problem("a\x00") and "surrogate" in id_text_problem("\ud800")
    assert "empty" in id_text_problem("\u00a0\u200b")
