"""load_interactions: formats, id types, sniffing, duplicates, min_rating and every input error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ncf.data.interactions import Interactions
from ncf.data.io import load_interactions
from ncf.errors import DataError


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return p


def pairs(data: Interactions) -> set[tuple]:
    f = data.to_frame()
    return set(zip(f["user"].tolist(), f["item"].tolist()))


# -- ids -------------------------------------------------------------------------------
def test_int_ids_stay_int(tmp_path):
    p = write(tmp_path, "r.csv", "user,item\n1,10\n2,20\n3,10\n")
    d = load_interactions(p, user="user", item="item")
    assert d.user_map.kind == "int" and d.item_map.kind == "int"
    assert d.user_map.ids.dtype == np.int64
    assert d.user_map.ids.tolist() == [1, 2, 3]
    assert pairs(d) == {(1, 10), (2, 20), (3, 10)}
    assert d.item_metadata is None


def test_leading_zero_ids_stay_strings(tmp_path):
    # Purely numeric text, but "007" would become 7 if parsed as a number.
    p = write(tmp_path, "r.csv", "user,item\n007,0042\n008,42\n7,1\n")
    d = load_interactions(p, user="user", item="item")
    assert d.user_map.kind == "str" and d.item_map.kind == "str"
    assert sorted(d.user_map.ids.tolist()) == ["007", "008", "7"]
    assert pairs(d) == {("007", "0042"), ("008", "42"), ("7", "1")}


def test_string_and_unicode_ids_stripped(tmp_path):
    p = write(tmp_path, "r.csv", "user,item\n  alice , café \nbob,日本\n")
    d = load_interactions(p, user="user", item="item")
    assert pairs(d) == {("alice", "café"), ("bob", "日本")}


def test_huge_integers_stay_strings(tmp_path):
    p = write(tmp_path, "r.csv", "user,item\n99999999999999999999,1\n1,2\n")
    d = load_interactions(p, user="user", item="item")
    assert d.user_map.kind == "str" and d.item_map.kind == "int"


def test_bom_and_crlf(tmp_path):
    p = write(tmp_path, "r.csv", b"\xef\xbb\xbfuser,item,rating\r\nu1,i1,5\r\nu2,i2,3\r\n")
    d = load_interactions(p, user="user", item="item", rating="rating")
    assert pairs(d) == {("u1", "i1"), ("u2", "i2")}
    assert sorted(d.ratings.tolist()) == [3.0, 5.0]


def test_bom_headerless_int_ids(tmp_path):
    p = write(tmp_path, "r.tsv", b"\xef\xbb\xbf1\t2\r\n3\t4\r\n")
    d = load_interactions(p, user=0, item=1)
    assert d.user_map.ids.tolist() == [1, 3]


def test_latin1_file_is_read(tmp_path):
    p = write(tmp_path, "r.csv", "user,item\nJosé,Müller\n".encode("latin-1"))
    d = load_interactions(p, user="user", item="item")
    assert pairs(d) == {("José", "Müller")}


# -- separators ------------------------------------------------------------------------
@pytest.mark.parametrize(("sep", "suffix"), [(",", ".csv"), ("\t", ".tsv"), (";", ".txt"), ("|", ".csv")])
def test_sniffs_separator(tmp_path, sep, suffix):
    rows = ["user", "item", "rating"], ["1", "a", "4"], ["2", "b", "5"], ["2", "a", "1"]
    p = write(tmp_path, "r" + suffix, "".join(sep.join(r) + "\n" for r in rows))
    d = load_interactions(p, user="user", item="item", rating="rating")
    assert d.report["sep"] == sep
    assert pairs(d) == {(1, "a"), (2, "b"), (2, "a")}


def test_double_colon_sep_headerless(tmp_path):
    p = write(tmp_path, "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    for sep in ("::", None):  # given or sniffed
        d = load_interactions(p, user=0, item=1, rating=2, timestamp=3, sep=sep)
        assert d.report["sep"] == "::"
        assert pairs(d) == {(1, 1193), (1, 661), (2, 1193)}
        assert d.timestamps.dtype == np.float64 and d.timestamps.min() == 978298413.0


def test_double_colon_sep_with_colons_inside_fields(tmp_path):
    # A single ':' inside a field must not split it (falls back to the python engine).
    p = write(tmp_path, "r.dat", "u:1::i:1::5\nu:2::i:2::4\n")
    d = load_interactions(p, user=0, item=1, rating=2, sep="::")
    assert pairs(d) == {("u:1", "i:1"), ("u:2", "i:2")}


def test_other_multichar_sep(tmp_path):
    p = write(tmp_path, "r.txt", "user~|item\na~|b\nc~|d\n")
    d = load_interactions(p, user="user", item="item", sep="~|")
    assert pairs(d) == {("a", "b"), ("c", "d")}


def test_quoted_fields(tmp_path):
    p = write(tmp_path, "r.csv", 'user,item\n1,"a, b"\n2,"c"\n')
    d = load_interactions(p, user="user", item="item")
    assert pairs(d) == {(1, "a, b"), (2, "c")}


# -- duplicates, ratings, timestamps ---------------------------------------------------
def test_duplicates_merged_latest_timestamp_kept(tmp_path):
    p = write(tmp_path, "r.csv", "u,i,r,t\n1,2,1,100\n1,2,5,300\n1,2,3,200\n2,2,4,50\n")
    d = load_interactions(p, user="u", item="i", rating="r", timestamp="t")
    assert d.report["duplicates_merged"] == 2
    assert d.report["rows_read"] == 4
    f = d.to_frame().set_index("user")
    assert f.loc[1, "timestamp"] == 300.0 and f.loc[1, "rating"] == 5.0
    assert len(d) == 2


def test_min_rating(tmp_path):
    p = write(tmp_path, "r.csv", "u,i,r\n1,a,5\n1,b,2\n2,a,4\n3,c,1\n")
    d = load_interactions(p, user="u", item="i", rating="r", min_rating=4)
    assert d.report["rows_below_min_rating"] == 2
    assert d.report["rows_read"] == 4
    assert pairs(d) == {(1, "a"), (2, "a")}
    # users/items seen only in dropped rows are not in the maps
    assert d.user_map.ids.tolist() == [1, 2] and d.item_map.ids.tolist() == ["a"]


def test_without_min_rating_every_row_is_positive(tmp_path):
    p = write(tmp_path, "r.csv", "u,i,r\n1,a,1\n2,b,0\n")
    d = load_interactions(p, user="u", item="i", rating="r")
    assert len(d) == 2 and d.report["rows_below_min_rating"] == 0


def test_datetime_string_timestamps(tmp_path):
    p = write(tmp_path, "r.csv", "u,i,t\n1,a,1970-01-02\n1,b,2000-01-01T00:00:00Z\n2,a,2000-01-01 01:00:00+01:00\n")
    d = load_interactions(p, user="u", item="i", timestamp="t")
    f = d.to_frame().set_index(["user", "item"])["timestamp"]
    assert f[(1, "a")] == 86400.0
    assert f[(1, "b")] == 946684800.0
    assert f[(2, "a")] == 946684800.0


def test_float_epoch_timestamps(tmp_path):
    p = write(tmp_path, "r.csv", "u,i,t\n1,a,1.5\n1,b,2e9\n")
    d = load_interactions(p, user="u", item="i", timestamp="t")
    assert sorted(d.timestamps.tolist()) == [1.5, 2e9]


# -- other sources ---------------------------------------------------------------------
def test_dataframe_source_keeps_types():
    df = pd.DataFrame(
        {"u": ["007", " x "], "i": [1, 2], "r": [4.0, 5.0], "t": pd.to_datetime(["1970-01-01", "1970-01-02"])}
    )
    d = load_interactions(df, user="u", item="i", rating="r", timestamp="t")
    assert d.user_map.kind == "str" and d.item_map.kind == "int"
    assert pairs(d) == {("007", 1), ("x", 2)}
    assert sorted(d.timestamps.tolist()) == [0.0, 86400.0]
    assert d.report["source"] == "DataFrame"


def test_dataframe_int_position_columns():
    df = pd.DataFrame([[1, 2], [3, 4]])
    d = load_interactions(df, user=0, item=1)
    assert pairs(d) == {(1, 2), (3, 4)}


def test_parquet_source(tmp_path):
    df = pd.DataFrame({"user": ["a", "b", "a"], "item": [1, 2, 2], "rating": [1.0, 2.0, 3.0], "ts": [3, 2, 1]})
    for suffix in (".parquet", ".pq"):
        p = tmp_path / f"r{suffix}"
        df.to_parquet(p)
        d = load_interactions(p, user="user", item="item", rating="rating", timestamp="ts")
        assert pairs(d) == {("a", 1), ("b", 2), ("a", 2)}
        assert d.report["rows_read"] == 3 and d.report["source"] == str(p)


# -- errors ----------------------------------------------------------------------------
def test_missing_file(tmp_path):
    p = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="nope.csv: file not found"):
        load_interactions(p, user="u", item="i")


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(DataError, match="directory"):
        load_interactions(tmp_path, user="u", item="i")


def test_unknown_column_lists_columns(tmp_path):
    p = write(tmp_path, "r.csv", "user,item\n1,2\n")
    with pytest.raises(DataError) as e:
        load_interactions(p, user="user", item="movie")
    msg = str(e.value)
    assert "r.csv" in msg and "'movie'" in msg and "'user', 'item'" in msg and "\n" not in msg


def test_unknown_column_position(tmp_path):
    p = write(tmp_path, "r.csv", "1,2\n")
    with pytest.raises(DataError, match="position 5 is out of range.*2 columns"):
        load_interactions(p, user=0, item=5)


def test_empty_file(tmp_path):
    p = write(tmp_path, "r.csv", "")
    with pytest.raises(DataError, match="r.csv: file is empty"):
        load_interactions(p, user="u", item="i")


def test_header_only(tmp_path):
    p = write(tmp_path, "r.csv", "u,i\n")
    with pytest.raises(DataError, match="r.csv: no data rows"):
        load_interactions(p, user="u", item="i")


def test_empty_dataframe():
    with pytest.raises(DataError, match="DataFrame: no rows"):
        load_interactions(pd.DataFrame({"u": [], "i": []}), user="u", item="i")


def test_no_rows_after_min_rating(tmp_path):
    p = write(tmp_path, "r.csv", "u,i,r\n1,2,1\n1,3,2\n")
    with pytest.raises(DataError, match=r"r.csv: no rows left after min_rating=4 \(ratings range from 1 to 2\)"):
        load_interactions(p, user="u", item="i", rating="r", min_rating=4)


def test_non_numeric_rating_names_row_and_value(tmp_path):
    p = write(tmp_path, "r.csv", "u,i,r\n1,2,4\n1,3,5\n2,3,good\n")
    with pytest.raises(DataError, match=r"r.csv: rating column 'r': rating at row 3 is not a number: 'good'"):
        load_interactions(p, user="u", item="i", rating="r")


def test_non_numeric_timestamp_names_row_and_value(tmp_path):
    p = write(tmp_path, "r.csv", "u,i,t\n1,2,100\n1,3,yesterday\n")
    with pytest.raises(DataError, match=r"timestamp column 't': timestamp at row 2 is not a number: 'yesterday'"):
        load_interactions(p, user="u", item="i", timestamp="t")


def test_bad_date_string_timestamp(tmp_path):
    p = write(tmp_path, "r.csv", "u,i,t\n1,2,2020-01-01\n1,3,someday\n")
    with pytest.raises(DataError, match=r"timestamp at row 2 is not a date/time: 'someday'"):
        load_interactions(p, user="u", item="i", timestamp="t")


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_rating(tmp_path, bad):
    p = write(tmp_path, "r.csv", f"u,i,r\n1,2,4\n1,3,{bad}\n")
    # Arrow may already parse the text as a float NaN/inf; either way the row is named.
    with pytest.raises(DataError, match=r"r.csv: rating column 'r': rating at row 2 is (not finite|missing or NaN)"):
        load_interactions(p, user="u", item="i", rating="r")


def test_non_finite_timestamp(tmp_path):
    p = write(tmp_path, "r.csv", "u,i,t\n1,2,inf\n")
    with pytest.raises(DataError, match=r"timestamp at row 1 is not finite"):
        load_interactions(p, user="u", item="i", timestamp="t")


def test_nan_rating_in_dataframe():
    df = pd.DataFrame({"u": [1, 2], "i": [1, 2], "r": [1.0, np.nan]})
    with pytest.raises(DataError, match=r"DataFrame: rating column 'r': rating at row 2 \(index 1\) is missing or NaN"):
        load_interactions(df, user="u", item="i", rating="r")


def test_empty_rating(tmp_path):
    p = write(tmp_path, "r.csv", "u,i,r\n1,2,\n")
    with pytest.raises(DataError, match=r"rating at row 1 is missing"):
        load_interactions(p, user="u", item="i", rating="r")


@pytest.mark.parametrize("content", ["u,i\n1,2\n,3\n", "u,i\n1,2\n  ,3\n"])
def test_missing_id_names_row(tmp_path, content):
    p = write(tmp_path, "r.csv", content)
    with pytest.raises(DataError, match=r"r.csv: user column 'u': missing \(empty\) id at row 2"):
        load_interactions(p, user="u", item="i")


def test_missing_id_in_dataframe():
    df = pd.DataFrame({"u": ["a", None], "i": [1, 2]})
    with pytest.raises(DataError, match=r"user column 'u': missing id at row 2"):
        load_interactions(df, user="u", item="i")


def test_user_and_item_same_column(tmp_path):
    p = write(tmp_path, "r.csv", "u,i\n1,2\n")
    with pytest.raises(DataError, match="r.csv: user and item both name column 'u'"):
        load_interactions(p, user="u", item="u")


def test_user_and_item_same_column_by_position():
    df = pd.DataFrame({"a": [1], "b": [2]})
    with pytest.raises(DataError, match="user and item both name column 'a'"):
        load_interactions(df, user="a", item=0)


def test_min_rating_without_rating_column(tmp_path):
    p = write(tmp_path, "r.csv", "u,i\n1,2\n")
    with pytest.raises(DataError, match="r.csv: min_rating=4 needs a rating column"):
        load_interactions(p, user="u", item="i", min_rating=4)


def test_unreadable_parquet(tmp_path):
    p = write(tmp_path, "r.parquet", b"this is not parquet at all")
    with pytest.raises(DataError, match="r.parquet: cannot read as Parquet"):
        load_interactions(p, user="u", item="i")


def test_parquet_unknown_column(tmp_path):
    p = tmp_path / "r.parquet"
    pd.DataFrame({"user": [1], "item": [2]}).to_parquet(p)
    with pytest.raises(DataError, match=r"rating column 'stars' not found; columns found: 'user', 'item'"):
        load_interactions(p, user="user", item="item", rating="stars")


def test_ragged_line_names_row(tmp_path):
    p = write(tmp_path, "r.csv", "u,i\n1,2\n3,4,5\n")
    with pytest.raises(DataError, match=r"r.csv: malformed line at row 2"):
        load_interactions(p, user="u", item="i")


def test_mixed_names_and_positions(tmp_path):
    p = write(tmp_path, "r.csv", "u,i\n1,2\n")
    with pytest.raises(DataError, match="not a mix"):
        load_interactions(p, user="u", item=1)


def test_undetectable_separator(tmp_path):
    p = write(tmp_path, "r.csv", "justonecolumn\nvalue\n")
    with pytest.raises(DataError, match="pass sep="):
        load_interactions(p, user="u", item="i")


def test_report_keys(tmp_path):
    p = write(tmp_path, "r.csv", "u,i\n1,2\n1,2\n")
    d = load_interactions(p, user="u", item="i")
    for key in ("rows_read", "rows_below_min_rating", "duplicates_merged", "source"):
        assert key in d.report
    assert d.report["source"] == str(p)
    assert d.report["duplicates_merged"] == 1


def test_large_file_is_vectorised(tmp_path):
    # 200k rows must parse quickly (no per-row Python work).
    n = 200_000
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"u": rng.integers(0, 5000, n), "i": rng.integers(0, 3000, n), "r": rng.integers(1, 6, n)})
    p = tmp_path / "big.csv"
    df.to_csv(p, index=False)
    d = load_interactions(p, user="u", item="i", rating="r", min_rating=3)
    assert d.report["rows_read"] == n
    assert d.report["rows_below_min_rating"] == int((df["r"] < 3).sum())
    assert d.user_map.kind == "int"
