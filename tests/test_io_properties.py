"""Property-based tests (hypothesis) of load_interactions: generated CSV/TSV/Parquet/DataFrames.

The contract under test: every input either loads *correctly* (the expected pairs, the raw
ids back exactly, with their type) or fails with DataError whose one-line message names the
file and, where it can, the column and the row. Nothing else may escape (no pandas/pyarrow
exception, no silently wrong output). Example counts are kept modest so the file runs in a
few seconds; ``derandomize=True`` makes every run generate the same examples.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ncf.data.io import load_interactions
from ncf.errors import DataError

SETTINGS = dict(derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# NCF_FUZZ_SCALE=20 multiplies every example count, for a longer bug hunt than the suite's.
SCALE = float(os.environ.get("NCF_FUZZ_SCALE", "1"))


def examples(n: int) -> int:
    return max(1, int(n * SCALE))


INT_ID = re.compile(r"(?:0|-?[1-9][0-9]{0,17})")  # what the loader turns into int64: no leading zeros or "-0"

_TMP = Path(tempfile.mkdtemp(prefix="ncf-io-props-"))


def _file(name: str, content: bytes) -> Path:
    p = _TMP / name
    p.write_bytes(content)
    return p


# -- strategies --------------------------------------------------------------------------
# Id characters: ASCII, accents, CJK, emoji, and the characters that need quoting in a
# delimited file (delimiters, quotes, colons). Not newlines: a line break inside an id.
ID_CHARS = st.characters(
    codec="utf-8", categories=("L", "N", "P", "S", "Zs"), exclude_characters="\r\n\x85\u2028\u2029"
)
text_id = st.text(ID_CHARS, min_size=1, max_size=8).map(str.strip).filter(bool)
int_id = st.one_of(
    st.integers(-50, 500),
    st.integers(-(10**19), 10**19),  # beyond 18 digits: stays a string
).map(str)
zero_padded = st.integers(0, 99).map(lambda v: f"{v:03d}")  # "007" must stay "007"
any_id = st.one_of(int_id, int_id, zero_padded, text_id, st.sampled_from(["-0", "+1", "1.0", "1e3", "NA", "nan"]))
padding = st.sampled_from(["", "", " ", "  ", "\t"])
finite = st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False)


@st.composite
def tables(draw, ids=any_id, min_rows=1):
    n = draw(st.integers(min_rows, 25))
    users = draw(st.lists(ids, min_size=1, max_size=6))
    items = draw(st.lists(ids, min_size=1, max_size=6))
    rows = []
    for _ in range(n):
        rows.append(
            (
                draw(st.sampled_from(users)),
                draw(st.sampled_from(items)),
                draw(finite),
                draw(st.integers(-(10**10), 10**10)),
            )
        )
    return rows


def _expected_ids(raw: list[str]) -> list:
    stripped = [r.strip() for r in raw]
    if all(INT_ID.fullmatch(s) for s in stripped):
        return [int(s) for s in stripped]
    return stripped


NA_TOKENS = {"NA", "nan"}  # the strategy's spellings of a missing value (the loader knows pandas' whole list)


def _missing_int_id(rows) -> bool:
    """A column of integer ids with a missing-value token among them: refused (issue 16), not read as text."""
    for col in (0, 1):
        stripped = [r[col].strip() for r in rows]
        na = [s in NA_TOKENS for s in stripped]
        if any(na) and all(n or INT_ID.fullmatch(s) for n, s in zip(na, stripped)):
            return True
    return False


def _expected_pairs(rows) -> dict:
    """(user, item) -> latest timestamp: duplicates merge keeping the latest."""
    us, its = _expected_ids([r[0] for r in rows]), _expected_ids([r[1] for r in rows])
    out: dict = {}
    for u, i, (_, _, _, t) in zip(us, its, rows):
        out[(u, i)] = max(out.get((u, i), -math.inf), t)
    return out


def _loaded_pairs(data) -> dict:
    f = data.to_frame()
    ts = f["timestamp"] if "timestamp" in f else [None] * len(f)
    return {(u, i): t for u, i, t in zip(f["user"].tolist(), f["item"].tolist(), list(ts))}


def _check_loaded(data, rows) -> None:
    want = _expected_pairs(rows)
    got = _loaded_pairs(data)
    assert set(got) == set(want)
    assert all(got[k] == want[k] for k in want)  # integer seconds < 2**53: exact as float64
    for axis, col in (("user", 0), ("item", 1)):
        ids = _expected_ids([r[col] for r in rows])
        m = getattr(data, f"{axis}_map")
        assert m.kind == ("int" if all(isinstance(v, int) for v in ids) else "str")
        assert sorted(m.ids.tolist(), key=repr) == sorted(set(ids), key=repr)  # raw ids round-trip, types kept


def _encode(rows, sep: str, *, bom: bool, crlf: bool, pad: str, header: bool, final_newline: bool) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=sep, lineterminator="\r\n" if crlf else "\n", quoting=csv.QUOTE_MINIMAL)
    if header:
        w.writerow(["user", "item", "rating", "timestamp"])
    for u, i, r, t in rows:
        w.writerow([pad + u + pad, pad + i + pad, repr(r), str(t)])
    text = buf.getvalue()
    if not final_newline:
        text = text.rstrip("\r\n")
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")


# -- properties ------------------------------------------------------------------------------
@settings(max_examples=examples(120), **SETTINGS)
@given(
    rows=tables(),
    sep=st.sampled_from([",", "\t", ";", "|"]),
    sniff=st.booleans(),
    bom=st.booleans(),
    crlf=st.booleans(),
    pad=padding,
    final_newline=st.booleans(),
)
def test_delimited_files_round_trip(rows, sep, sniff, bom, crlf, pad, final_newline):
    content = _encode(rows, sep, bom=bom, crlf=crlf, pad=pad, header=True, final_newline=final_newline)
    path = _file("t.tsv" if sep == "\t" else "t.csv", content)
    kw = dict(user="user", item="item", rating="rating", timestamp="timestamp")
    if _missing_int_id(rows):
        with pytest.raises(DataError, match="missing id"):
            load_interactions(path, sep=sep, **kw)
        return
    try:
        data = load_interactions(path, sep=None if sniff else sep, **kw)
    except DataError as e:
        # Sniffing may legitimately fail on a file whose ids are full of candidate delimiters;
        # then the message must say so and the explicit separator must work.
        assert sniff and "separator" in str(e) or "malformed" in str(e), str(e)
        data = load_interactions(path, sep=sep, **kw)
    _check_loaded(data, rows)


@settings(max_examples=examples(60), **SETTINGS)
@given(rows=tables(ids=st.one_of(int_id, zero_padded, text_id)), sep=st.sampled_from([",", "\t", "::"]))
def test_headerless_files_by_position_round_trip(rows, sep):
    if sep == "::":  # MovieLens style: literal "::", no quoting, so no ':' inside ids
        assume(all(":" not in r[0] + r[1] and "\t" not in r[0] + r[1] for r in rows))
        content = "\n".join(f"{u}::{i}::{r!r}::{t}" for u, i, r, t in rows).encode()
    else:
        content = _encode(rows, sep, bom=False, crlf=False, pad="", header=False, final_newline=True)
    data = load_interactions(_file("h.dat", content), user=0, item=1, rating=2, timestamp=3, sep=sep)
    _check_loaded(data, rows)


@settings(max_examples=examples(40), **SETTINGS)
@given(rows=tables(), seps=st.permutations([",", "\t", ";", "|"]))
def test_a_wrong_explicit_separator_fails_naming_the_columns_found(rows, seps):
    sep, wrong = seps[0], seps[1]
    content = _encode(rows, sep, bom=False, crlf=False, pad="", header=True, final_newline=True)
    path = _file("w.csv", content)
    kw = dict(user="user", item="item", rating="rating", timestamp="timestamp")
    with pytest.raises(DataError) as e:
        load_interactions(path, sep=wrong, **kw)
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg
    assert "not found; columns found:" in msg or "malformed line" in msg, msg


BAD_NUMBERS = st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "", " ", "abc", "1,5", "--1", "1e400"])


@settings(max_examples=examples(80), **SETTINGS)
@given(
    rows=tables(ids=st.one_of(int_id, text_id)),
    column=st.sampled_from(["rating", "timestamp"]),
    bad=BAD_NUMBERS,
    at=st.integers(0, 24),
    data=st.data(),
)
def test_bad_number_is_named_by_file_column_and_row(rows, column, bad, at, data):
    at = at % len(rows)
    sep = data.draw(st.sampled_from([",", "\t"]))
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=sep, lineterminator="\n")
    w.writerow(["user", "item", "rating", "timestamp"])
    for k, (u, i, r, t) in enumerate(rows):
        cells = [u, i, repr(r), str(t)]
        if k == at:
            cells[2 if column == "rating" else 3] = bad
        w.writerow(cells)
    path = _file("n.csv", buf.getvalue().encode())
    with pytest.raises(DataError) as e:
        load_interactions(path, user="user", item="item", rating="rating", timestamp="timestamp", sep=sep)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and f"column '{column}'" in msg
    assert f"row {at + 1}" in msg, msg


@settings(max_examples=examples(60), **SETTINGS)
@given(rows=tables(ids=st.one_of(int_id, text_id)), at=st.integers(0, 24), which=st.sampled_from(["user", "item"]))
def test_missing_id_is_named_by_file_column_and_row(rows, at, which):
    at = at % len(rows)
    lines = ["user,item"]
    for k, (u, i, _, _) in enumerate(rows):
        u, i = (("" if which == "user" else u), ("" if which == "item" else i)) if k == at else (u, i)
        lines.append(",".join(csv_quote(v) for v in (u, i)))
    path = _file("m.csv", ("\n".join(lines) + "\n").encode())
    with pytest.raises(DataError) as e:
        load_interactions(path, user="user", item="item", sep=",")
    msg = str(e.value)
    assert str(path) in msg and f"column '{which}'" in msg and f"row {at + 1}" in msg, msg


def csv_quote(v: str) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([v])
    return buf.getvalue()


@settings(max_examples=examples(150), **SETTINGS)
@given(
    prefix=st.sampled_from([b"", b"user,item\n", b"user,item,rating\n", b"\xef\xbb\xbfuser\titem\r\n"]),
    body=st.binary(max_size=200),
)
def test_garbled_bytes_load_or_raise_data_error(prefix, body):
    path = _file("g.csv", prefix + body)
    try:
        data = load_interactions(path, user="user", item="item")
    except DataError as e:
        msg = str(e)
        assert "\n" not in msg and str(path) in msg, msg
        return
    assert len(data) >= 1 and data.n_users >= 1 and data.n_items >= 1


@settings(max_examples=examples(80), **SETTINGS)
@given(
    text=st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=120),
    rating=st.booleans(),
    timestamp=st.booleans(),
)
def test_garbled_text_with_every_option_loads_or_raises_data_error(text, rating, timestamp):
    path = _file("x.txt", ("user,item,rating,timestamp\n" + text).encode("utf-8"))
    try:
        load_interactions(
            path,
            user="user",
            item="item",
            rating="rating" if rating else None,
            timestamp="timestamp" if timestamp else None,
        )
    except DataError as e:
        assert "\n" not in str(e) and str(path) in str(e)


# -- typed sources: DataFrame and Parquet give the same answer ---------------------------------
frame_ids = st.one_of(
    st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=20),
    st.lists(st.integers(0, 30).map(float), min_size=1, max_size=20),  # float column of whole numbers
    st.lists(text_id, min_size=1, max_size=20),
    st.lists(st.one_of(st.integers(0, 9), text_id), min_size=1, max_size=20),  # mixed types
    st.lists(st.one_of(st.integers(0, 9), st.none()), min_size=1, max_size=20),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=20),
    st.lists(st.booleans(), min_size=1, max_size=20),
)


@st.composite
def frames(draw):
    users = draw(frame_ids)
    n = len(users)
    items = draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)) if draw(st.booleans()) else draw(frame_ids)
    items = (items * n)[:n]
    ratings = draw(st.lists(st.one_of(finite, st.just(float("nan")), st.just(float("inf"))), min_size=n, max_size=n))
    df = pd.DataFrame(
        {
            "user": pd.Series(users, dtype=object if _mixed(users) else None),
            "item": pd.Series(items, dtype=object if _mixed(items) else None),
            "rating": ratings,
        }
    )
    if draw(st.booleans()):
        df["user"] = df["user"].astype("category")
    return df


def _mixed(values) -> bool:
    return len({type(v) for v in values}) > 1


def _outcome(load):
    try:
        d = load()
    except DataError as e:
        assert "\n" not in str(e)
        return ("error", None)
    f = d.to_frame()
    return ("ok", sorted(zip(f["user"].tolist(), f["item"].tolist(), d.ratings.tolist()), key=repr))


@settings(max_examples=examples(80), **SETTINGS)
@given(df=frames())
def test_dataframe_and_parquet_load_the_same_or_raise_data_error(df):
    kw = dict(user="user", item="item", rating="rating")
    from_frame = _outcome(lambda: load_interactions(df, **kw))
    try:
        df.to_parquet(_TMP / "p.parquet")
    except Exception:  # noqa: BLE001 - pyarrow cannot store this frame (e.g. mixed object column)
        return
    from_parquet = _outcome(lambda: load_interactions(_TMP / "p.parquet", **kw))
    assert from_parquet[0] == from_frame[0]
    if from_frame[0] == "ok":
        assert from_parquet == from_frame
        finite_rows = np.isfinite(df["rating"].to_numpy(dtype=float))
        assert finite_rows.all()  # a NaN/inf rating can never load silently


@settings(max_examples=examples(40), **SETTINGS)
@given(cut=st.integers(0, 10_000), flip=st.integers(0, 10_000), byte=st.integers(0, 255))
def test_truncated_or_edited_parquet_raises_data_error(cut, flip, byte):
    src = _TMP / "good.parquet"
    if not src.exists():
        pd.DataFrame({"user": [1, 2, 3], "item": ["a", "b", "c"], "rating": [1.0, 2.0, 3.0]}).to_parquet(src)
    raw = bytearray(src.read_bytes())
    raw[flip % len(raw)] = byte
    raw = raw[: max(1, cut % (len(raw) + 1))]
    path = _file("bad.parquet", bytes(raw))
    try:
        load_interactions(path, user="user", item="item", rating="rating")
    except DataError as e:
        assert str(path) in str(e) and "\n" not in str(e)


@pytest.mark.parametrize("n", [1, 2])
def test_one_user_one_item_every_row_identical(tmp_path, n):
    p = tmp_path / "same.csv"
    p.write_text("user,item,timestamp\n" + "u,i,5\n" * n)
    d = load_interactions(p, user="user", item="item", timestamp="timestamp")
    assert d.shape == (1, 1) and len(d) == 1 and d.report["duplicates_merged"] == n - 1


# -- the bugs these properties found, pinned as plain examples ---------------------------------
def test_minus_zero_is_not_merged_with_zero(tmp_path):
    p = tmp_path / "z.csv"
    p.write_text("user,item\n-0,1\n0,2\n")
    d = load_interactions(p, user="user", item="item")
    assert d.user_map.kind == "str" and sorted(d.user_map.ids.tolist()) == ["-0", "0"]


def test_categorical_float_ids_load_as_ints():
    df = pd.DataFrame({"user": pd.Series([0.0, 2.0, 0.0]).astype("category"), "item": [1, 2, 3]})
    d = load_interactions(df, user="user", item="item")
    assert d.user_map.kind == "int" and sorted(d.user_map.ids.tolist()) == [0, 2]


def test_object_column_of_ints_and_floats():
    df = pd.DataFrame({"user": pd.Series([1, 2.0, 3], dtype=object), "item": [1, 2, 3]})
    assert load_interactions(df, user="user", item="item").user_map.ids.tolist() == [1, 2, 3]
    df["user"] = pd.Series([2**60 + 1, 2.0, 3], dtype=object)  # would lose precision as a float
    with pytest.raises(DataError, match="too large to convert exactly"):
        load_interactions(df, user="user", item="item")


def test_year_one_dates_do_not_overflow(tmp_path):
    p = tmp_path / "y.csv"
    p.write_text("user,item,timestamp\na,b,0001-01-05\nc,d,2020-01-01T00:00:00Z\n")
    d = load_interactions(p, user="user", item="item", timestamp="timestamp")
    # 0001-01-01 is -62135596800 s from the epoch; plus 4 days of 86400 s
    assert sorted(d.timestamps.tolist()) == [-62135596800.0 + 4 * 86400, 1577836800.0]


def test_number_like_text_is_not_guessed_as_a_date(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text('user,item,timestamp\na,b,"1,5"\n')
    with pytest.raises(DataError, match=r"timestamp at row 1 is not a date/time: '1,5'"):
        load_interactions(p, user="user", item="item", timestamp="timestamp")
