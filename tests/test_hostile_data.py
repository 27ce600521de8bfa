"""Issue 16, loading data: ids are never silently a different id, odd sources are read once.

Each test names the defect it pins (numbers as in docs/RELIABILITY.md, "Hostile inputs").
"""

from __future__ import annotations

import contextlib
import gzip
import importlib
import io
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

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


# -- defect 3: pipes are read once; compressed files are decompressed ---------------------------------
CSV = "user,item,timestamp\n" + "".join(
    f"{u},{100 + (u * 7 + k) % 13},{u * 10 + k}\n" for u in range(1, 9) for k in range(4)
)


def _expected():
    return load_interactions(pd.read_csv(io.StringIO(CSV)), user="user", item="item", timestamp="timestamp")


def _same(a, b) -> None:
    assert a.user_map == b.user_map and a.item_map == b.item_map
    np.testing.assert_array_equal(a.user_idx, b.user_idx)
    np.testing.assert_array_equal(a.item_idx, b.item_idx)


@pytest.mark.parametrize("codec", ["gzip", "bz2", "xz", "zstd"])
def test_compressed_csv_is_read(tmp_path, codec):
    raw = CSV.encode()
    if codec == "zstd":
        if not pa.Codec.is_available("zstd"):
            pytest.skip("this pyarrow has no zstd codec")
        data = pa.Codec("zstd").compress(raw, asbytes=True)
        suffix = ".zst"
    else:
        mod = importlib.import_module({"gzip": "gzip", "bz2": "bz2", "xz": "lzma"}[codec])
        data = mod.compress(raw)
        suffix = {"gzip": ".gz", "bz2": ".bz2", "xz": ".xz"}[codec]
    p = tmp_path / f"ratings.csv{suffix}"
    p.write_bytes(data)
    d = load_interactions(
        p, user="user", item="item", timestamp="timestamp"
    )  # before: "cannot detect the field separator"
    _same(d, _expected())
    assert d.report["source"] == str(p)
    (tmp_path / "plain.csv").write_bytes(data)  # recognised by its bytes, not its name
    _same(load_interactions(tmp_path / "plain.csv", user="user", item="item", timestamp="timestamp"), _expected())


def test_damaged_compressed_file_is_a_data_error(tmp_path):
    p = tmp_path / "r.csv.gz"
    p.write_bytes(gzip.compress(CSV.encode())[:60])
    with pytest.raises(DataError, match="cannot decompress the gzip data"):
        load_interactions(p, user="user", item="item")


SRC = str(Path(__file__).resolve().parents[1] / "src")


def _ncf(*args: str, stdin=None, input_bytes=None, timeout=90) -> subprocess.CompletedProcess:
    """The real entry point (this checkout's package), as a user runs it in a shell pipeline."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, "-m", "ncf", *args],
        input=input_bytes,
        stdin=stdin,
        capture_output=True,
        timeout=timeout,
        env=env,
    )


def test_stdin_pipe_is_read_once():
    r = _ncf("data", "describe", "/dev/stdin", input_bytes=CSV.encode())  # before: "file is empty" / lseek failed
    assert r.returncode == 0, r.stderr.decode()
    assert b"users         8" in r.stdout and b"/dev/stdin" in r.stdout


def test_parquet_through_a_pipe(tmp_path):
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(pd.read_csv(io.StringIO(CSV))), buf)
    r = _ncf("data", "describe", "/dev/stdin", input_bytes=buf.getvalue())
    assert r.returncode == 0, r.stderr.decode()
    assert b"users         8" in r.stdout


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs mkfifo")
def test_fifo_is_read_once(tmp_path):
    fifo = tmp_path / "p.csv"
    os.mkfifo(fifo)

    def writer() -> None:
        with open(fifo, "w") as fh:  # blocks until the reader opens it
            fh.write(CSV)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        r = _ncf("data", "describe", str(fifo), timeout=60)  # before: hung on a second open of the FIFO
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):  # release a reader blocked on open
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("ncf data describe hung on a FIFO")
    assert r.returncode == 0, r.stderr.decode()
    assert b"users         8" in r.stdout


def test_a_header_of_20002_columns_is_read_whole(tmp_path):
    cols = [f"c{k}" for k in range(20_000)] + ["user", "item"]
    p = tmp_path / "wide.csv"
    with open(p, "w") as fh:
        fh.write(",".join(cols) + "\n")
        for u in range(5):
            fh.write(",".join(["0"] * 20_000 + [str(u), str(u + 10)]) + "\n")
    d = load_interactions(p, user="user", item="item")  # before: "user column 'user' not found" (header cut at 64 KB)
    assert sorted(d.user_map.ids.tolist()) == [0, 1, 2, 3, 4]
