"""Load interaction logs (CSV/TSV/.dat, Parquet or a DataFrame) into :class:`Interactions`.

Parsing is vectorised end to end: text files go through Arrow's CSV reader (or pandas'
python engine for unusual multi-character separators), ids are read as text and turned
into ``int64`` only when every id is a plain integer without leading zeros, so ``"007"``
stays ``"007"``. Every problem with the input raises :class:`~ncf.errors.DataError` with a
one-line message naming the file, the column and, where possible, the first bad row.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import shutil
import stat
import tempfile
import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ncf.data.ids import INT_ID_PATTERN, IdMap, _as_id_array, first_bad_text_id
from ncf.data.interactions import Interactions
from ncf.errors import ConfigError, DataError, one_line

__all__ = ["load_interactions", "readable_source"]

PARQUET_SUFFIXES = (".parquet", ".pq")  # the one list (sources, batch output)
_SAMPLE_BYTES = 64 * 1024
_SAMPLE_MAX_BYTES = 64 * 1024 * 1024  # a header line wider than this is refused, not cut
_SNIFF_LINES = 50
_SNIFF_DELIMITERS = ",\t;|"
# ncf.data.ids.INT_ID_PATTERN with at most 18 digits (always within int64, so one regex decides
# the whole column). No "-0": it would merge with the distinct id "0".
_INT_RE = INT_ID_PATTERN.replace("[0-9]*", "[0-9]{0,17}")
# How a missing value is spelled (pandas' default NA strings): in a column of integer ids
# these are missing ids, not a user called "NaN" that would turn every id into text.
_NA_TOKENS = (
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
)

Source = str | PathLike[str] | pd.DataFrame
ColumnKey = Hashable
Where = Callable[[int], str]  # position -> "row 3" / "index 'x'"


# -- public ----------------------------------------------------------------------------
def load_interactions(
    source: Source,
    *,
    user: ColumnKey,
    item: ColumnKey,
    rating: ColumnKey | None = None,
    timestamp: ColumnKey | None = None,
    min_rating: float | None = None,
    sep: str | None = None,
    keep_source_row: bool = False,
) -> Interactions:
    """Read user-item interactions from a file or a DataFrame.

    Parameters
    ----------
    source:
        Path to a delimited text file (``.csv``, ``.tsv``, ``.txt``, ``.dat`` or any
        other suffix), to a Parquet file (``.parquet``/``.pq``), or a pandas DataFrame.
    user, item:
        Columns holding the raw user and item ids: header names, or ``int`` positions
        (0-based) for a headerless text file. For Parquet and DataFrames an ``int`` is a
        column label if one exists, else a position.
    rating:
        Optional numeric rating column.
    timestamp:
        Optional timestamp column: numbers (epoch seconds) or date/time strings (ISO 8601
        or another consistent format; naive times are taken as UTC). Stored as float
        seconds since the epoch.
    min_rating:
        Keep only rows with ``rating >= min_rating`` (needs ``rating``). Without it every
        row is a positive interaction.
    sep:
        Field separator of a text file. ``None`` sniffs it from the first lines (comma,
        tab, semicolon, pipe, or ``::``). Multi-character separators such as MovieLens'
        ``"::"`` are taken literally.
    keep_source_row:
        Record each interaction's 0-based position among the rows read (header excluded,
        counted before ``min_rating``) in ``Interactions.source_row``, so splits defined by
        file order (:func:`ncf.split.allbut`) can use it. Off by default: it costs 8 bytes
        per interaction.

    Returns
    -------
    Interactions
        Duplicated (user, item) pairs are merged keeping the latest timestamp. ``report``
        holds ``source``, ``rows_read``, ``rows_below_min_rating`` and
        ``duplicates_merged``; ``item_metadata`` is ``None``.

    Raises
    ------
    DataError
        Missing or unreadable file, unknown column, empty data, missing ids, non-numeric
        or non-finite ratings/timestamps, or no rows left after ``min_rating``.

    Notes
    -----
    Ids from text files are strings unless every id of the column is a plain integer
    (no leading zeros, no sign other than ``-``, at most 18 digits); then they are
    ``int64``. Surrounding whitespace is stripped. Ids from Parquet files and DataFrames
    keep their types. Row numbers in messages count data rows from 1, header excluded.
    """
    label = "DataFrame" if isinstance(source, pd.DataFrame) else str(source)
    roles: dict[str, ColumnKey] = {"user": user, "item": item}
    if rating is not None:
        roles["rating"] = rating
    if timestamp is not None:
        roles["timestamp"] = timestamp
    _check_roles(label, roles, min_rating)
    if not isinstance(keep_source_row, bool):
        raise ConfigError(f"keep_source_row == {keep_source_row!r}, must be True or False")

    if isinstance(source, pd.DataFrame):
        frame, where, info = _from_frame(source, roles, label)
    else:
        if not isinstance(source, (str, PathLike)):
            raise DataError(
                f"load_interactions: source must be a file path or a pandas DataFrame, got {type(source).__name__}"
            )
        path = Path(source)
        if not path.exists():
            raise DataError(f"{label}: file not found")
        if path.is_dir():
            raise DataError(f"{label}: is a directory, not a file; pass the path of the ratings file")
        with readable_source(source) as src:  # a pipe or a compressed file: read once, into a temp file
            real = Path(src)
            if real.suffix.lower() in PARQUET_SUFFIXES:
                frame, where, info = _from_parquet(real, roles, label)
            else:
                frame, where, info = _from_text(real, roles, label, sep)
    return _build(frame, roles, label, where, min_rating, info, keep_source_row)


# -- sources that cannot be read twice: pipes, FIFOs, /dev/stdin, compressed files ----------------------
_HEAD = 10  # bytes that identify a compressed stream
_COMPRESSED_SUFFIXES = (".gz", ".gzip", ".bz2", ".xz", ".zst", ".zstd")


class SourceFile(PathLike):
    """A readable regular file standing in for a source (``os.fspath`` gives it), named as the source.

    ``str()`` is the original name, so every message names what the user gave, not the temp file.
    """

    def __init__(self, path: Path, label: str) -> None:
        self.path, self.label = path, label

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return self.label

    def __repr__(self) -> str:
        return f"SourceFile({self.label!r} -> {str(self.path)!r})"


def _codec(head: bytes) -> str | None:
    """The compression of a stream from its first bytes (their magic numbers), or None."""
    if head.startswith(b"\x1f\x8b\x08"):
        return "gzip"
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] == b"1AY&SY":
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return None


class _Prefixed(io.RawIOBase):
    """The bytes already read from a stream, then the rest of it (a pipe cannot seek back)."""

    def __init__(self, head: bytes, rest: Any) -> None:
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._rest.read(len(b))
        b[: len(data)] = data
        return len(data)


def _decompressed(stream: Any, codec: str | None) -> Any:
    if codec is None:
        return stream
    if codec == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=stream, mode="rb")
    if codec == "bz2":
        import bz2

        return bz2.BZ2File(stream)
    if codec == "xz":
        import lzma

        return lzma.LZMAFile(stream)
    import pyarrow as pa

    return pa.CompressedInputStream(pa.PythonFile(stream, mode="r"), "zstd")


@contextlib.contextmanager
def readable_source(source: str | PathLike[str]) -> Iterator[str | PathLike[str]]:
    """``source`` as a regular, uncompressed file that may be read several times.

    A regular uncompressed file is yielded as it is. A pipe, FIFO or ``/dev/stdin`` (which can
    be read only once) is read once, and a gzip/bz2/xz/zstd file (recognised by its first bytes,
    whatever its name) is decompressed, into a temporary file that is removed on exit; the
    :class:`SourceFile` yielded names the original. Parquet arriving through a pipe is recognised
    by its magic bytes. Unreadable or undecompressable input raises :class:`DataError`.
    """
    if isinstance(source, SourceFile):
        yield source
        return
    label = str(source)
    try:
        mode = os.stat(source).st_mode
        if stat.S_ISDIR(mode):  # a MovieLens folder: the caller reads what it holds
            yield source
            return
        if stat.S_ISREG(mode):
            with open(source, "rb") as fh:
                codec = _codec(fh.read(_HEAD))
            if codec is None:
                yield source
                return
    except OSError as e:
        raise DataError(f"{label}: cannot read file ({one_line(e)})") from e
    name = Path(label).name or "data"
    for suffix in _COMPRESSED_SUFFIXES:
        name = name.removesuffix(suffix) or "data"
    with tempfile.TemporaryDirectory(prefix="ncf-source-") as tmp:
        target = Path(tmp) / name
        try:
            with open(source, "rb") as raw:
                head = b""
                while len(head) < _HEAD:  # a pipe may deliver the first bytes in pieces
                    more = raw.read(_HEAD - len(head))
                    if not more:
                        break
                    head += more
                codec = _codec(head)
                stream = _decompressed(io.BufferedReader(_Prefixed(head, raw), 1 << 20), codec)
                with open(target, "wb") as out:
                    shutil.copyfileobj(stream, out, 1 << 20)
        except OSError as e:
            raise DataError(f"{label}: cannot read file ({one_line(e)})") from e
        except Exception as e:  # zlib/lzma/Arrow errors of a damaged compressed stream
            raise DataError(f"{label}: cannot decompress the {codec} data ({one_line(e)}); the file is damaged") from e
        with open(target, "rb") as fh:
            if fh.read(4) == b"PAR1" and target.suffix.lower() not in PARQUET_SUFFIXES:
                target = target.rename(target.with_name(target.name + ".parquet"))
        yield SourceFile(target, label)


# -- argument checks -------------------------------------------------------------------
def _check_roles(label: str, roles: dict[str, ColumnKey], min_rating: float | None) -> None:
    for role, key in roles.items():
        if isinstance(key, bool) or not isinstance(key, Hashable):
            raise ConfigError(f"{label}: {role}= must be a column name or an int position, got {key!r}")
    seen: dict[ColumnKey, str] = {}
    for role, key in roles.items():
        if key in seen:
            raise DataError(f"{label}: {seen[key]} and {role} both name column {key!r}; they must be different columns")
        seen[key] = role
    if min_rating is not None:
        if "rating" not in roles:
            raise DataError(f"{label}: min_rating={min_rating!r} needs a rating column; pass rating=<column name>")
        if isinstance(min_rating, bool) or not isinstance(min_rating, (int, float, np.integer, np.floating)):
            raise ConfigError(f"{label}: min_rating must be a number, got {min_rating!r}")
        if not np.isfinite(min_rating):
            raise ConfigError(f"{label}: min_rating must be finite, got {min_rating!r}")


def _resolve(label: str, roles: dict[str, ColumnKey], names: list[Any], *, by_label: bool) -> dict[str, int]:
    """Positions of each role's column in ``names``; unknown or duplicated names raise."""
    out: dict[str, int] = {}
    for role, key in roles.items():
        hits = [k for k, n in enumerate(names) if n == key and type(n) is type(key)] if by_label else []
        if len(hits) > 1:
            raise DataError(f"{label}: column {key!r} ({role}) appears {len(hits)} times in the header; rename one")
        if hits:
            out[role] = hits[0]
        elif isinstance(key, (int, np.integer)) and 0 <= int(key) < len(names):
            out[role] = int(key)
        else:
            shown = ", ".join(repr(n) for n in names[:30]) + (f", ... ({len(names)} in all)" if len(names) > 30 else "")
            if isinstance(key, (int, np.integer)):
                msg = (
                    f"{label}: {role} column position {key} is out of range; the data has {len(names)} columns: {shown}"
                )
            else:
                msg = f"{label}: {role} column {key!r} not found; columns found: {shown}"
            raise DataError(msg)
    pos_to_role: dict[int, str] = {}
    for role, pos in out.items():
        if pos in pos_to_role:
            raise DataError(
                f"{label}: {pos_to_role[pos]} and {role} both name column {names[pos]!r}; "
                "they must be different columns"
            )
        pos_to_role[pos] = role
    return out


# -- sources ---------------------------------------------------------------------------
def _rows_where(offset: int = 1) -> Where:
    return lambda pos: f"row {pos + offset}"


def _from_frame(df: pd.DataFrame, roles: dict[str, ColumnKey], label: str) -> tuple[pd.DataFrame, Where, dict]:
    cols = _resolve(label, roles, list(df.columns), by_label=True)
    frame = pd.DataFrame({role: df.iloc[:, pos].reset_index(drop=True) for role, pos in cols.items()})
    index = df.index

    def where(pos: int) -> str:
        return f"row {pos + 1} (index {index[pos]!r})"

    return frame, where, {"format": "dataframe", "typed_ids": True}


def _from_parquet(path: Path, roles: dict[str, ColumnKey], label: str) -> tuple[pd.DataFrame, Where, dict]:
    try:
        import pyarrow.parquet as pq

        names = list(pq.read_schema(path).names)
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise DataError(f"{label}: cannot read as Parquet ({one_line(e)})") from e
    cols = _resolve(label, roles, names, by_label=True)
    wanted = sorted(set(cols.values()))
    try:
        table = pq.read_table(path, columns=[names[p] for p in wanted])
        df = table.to_pandas()
    except Exception as e:
        raise DataError(f"{label}: cannot read as Parquet ({one_line(e)})") from e
    frame = pd.DataFrame({role: df.iloc[:, wanted.index(pos)] for role, pos in cols.items()}).reset_index(drop=True)
    return frame, _rows_where(), {"format": "parquet", "typed_ids": True}


def _from_text(
    path: Path, roles: dict[str, ColumnKey], label: str, sep: str | None
) -> tuple[pd.DataFrame, Where, dict]:
    positional = [isinstance(k, (int, np.integer)) for k in roles.values()]
    if any(positional) and not all(positional):
        raise DataError(
            f"{label}: give all columns as header names or all as int positions (headerless file), not a mix"
        )
    header = not any(positional)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(_SAMPLE_BYTES)
            # A header wider than the sample (20,000 columns) would be cut and misread: read on
            # until the sample holds the header and a data line.
            while raw.count(b"\n") < 2 and len(raw) < _SAMPLE_MAX_BYTES:
                more = fh.read(len(raw))
                if not more:
                    break
                raw += more
            truncated = bool(fh.read(1))
    except OSError as e:
        raise DataError(f"{label}: cannot read file ({one_line(e)})") from e
    if truncated and raw.count(b"\n") < 1:
        raise DataError(f"{label}: the first line is over {_SAMPLE_MAX_BYTES >> 20} MiB; is this a ratings file?")
    text = raw.decode("utf-8-sig", errors="replace")
    lines = text.splitlines()
    if truncated and len(lines) > 1:
        lines = lines[:-1]  # the last sampled line may be cut off
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        raise DataError(f"{label}: file is empty")
    if sep is None:
        sep = _sniff(lines[:_SNIFF_LINES], label)
    elif not isinstance(sep, str) or not sep:
        raise ConfigError(f"{label}: sep must be a non-empty string, got {sep!r}")

    first = _split_line(lines[0], sep)
    if header:
        names: list[Any] = [n.strip() for n in first]
    else:
        names = list(range(len(first)))
    cols = _resolve(label, roles, names, by_label=header)
    if header and len(lines) == 1 and not truncated:
        raise DataError(f"{label}: no data rows (the file has only a header line)")

    frame = None
    if len(sep) == 1:
        frame = _read_arrow(path, label, sep, len(names), cols, header, stride=1)
    elif sep == sep[0] * len(sep) and sep[0] not in '\r\n"':
        # "::" -> split on ":" and keep every second field (fast C path); falls back to
        # the python engine when a field itself contains the character.
        frame = _read_arrow(path, label, sep[0], len(names), cols, header, stride=len(sep))
    if frame is None:
        frame = _read_python(path, label, sep, len(names), cols, header)
    if len(frame) == 0:
        raise DataError(f"{label}: no data rows" + (" (the file has only a header line)" if header else ""))
    return frame, _rows_where(), {"format": "text", "sep": sep, "typed_ids": False}


def _sniff(lines: list[str], label: str) -> str:
    if all("::" in ln for ln in lines):
        return "::"
    sample = "\n".join(lines)
    try:
        found = csv.Sniffer().sniff(sample, delimiters=_SNIFF_DELIMITERS).delimiter
    except csv.Error:
        found = None
    if found and all(found in ln for ln in lines):
        return found
    # Fallback: a candidate present in the first line, preferring one with the same count
    # on every line, then the most frequent (a ragged file then fails with a clear
    # "malformed line" message instead of a guess).
    present = [c for c in _SNIFF_DELIMITERS if c in lines[0]]
    if present:
        return max(present, key=lambda c: (len({ln.count(c) for ln in lines}) == 1, lines[0].count(c)))
    raise DataError(f"{label}: cannot detect the field separator from the first lines; pass sep=',' (or '\\t', ...)")


def _split_line(line: str, sep: str) -> list[str]:
    if len(sep) == 1:
        return next(csv.reader([line], delimiter=sep))
    return line.split(sep)


def _read_arrow(
    path: Path,
    label: str,
    delim: str,
    n_fields: int,
    cols: dict[str, int],
    header: bool,
    stride: int,
) -> pd.DataFrame | None:
    """Read the needed columns with Arrow; ids as strings, other columns type-inferred."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    n_raw = n_fields * stride - (stride - 1)
    names = [f"c{k}" for k in range(n_raw)]
    gaps = [f"c{k}" for k in range(n_raw) if k % stride] if stride > 1 else []
    want = {role: f"c{pos * stride}" for role, pos in cols.items()}
    types = {want[r]: pa.string() for r in ("user", "item")}
    types.update({g: pa.string() for g in gaps})
    table = None
    for encoding in ("utf8", "latin-1"):
        try:
            table = pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(column_names=names, skip_rows=1 if header else 0, encoding=encoding),
                parse_options=pacsv.ParseOptions(delimiter=delim, quote_char='"' if stride == 1 else False),
                convert_options=pacsv.ConvertOptions(
                    include_columns=sorted(set(want.values()) | set(gaps), key=lambda c: int(c[1:])),
                    column_types=types,
                    null_values=[],
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
            break
        except pa.ArrowInvalid as e:
            msg = str(e)
            if encoding == "utf8" and "utf8" in msg.lower():
                continue
            if stride > 1:
                return None
            row = _first_ragged_row(path, encoding, delim, n_fields, header)
            at = f" at {row}" if row else ""
            raise DataError(f"{label}: malformed line{at} ({one_line(msg)}); every line needs {n_fields} fields") from e
    if table is None:  # pragma: no cover - latin-1 decodes any byte
        raise DataError(f"{label}: cannot decode the file as UTF-8 or Latin-1")
    for g in gaps:
        col = table.column(g)
        if col.null_count or pc.any(pc.not_equal(col, "")).as_py():
            return None
    df = table.select(list(want.values())).to_pandas()
    return pd.DataFrame({role: df[c] for role, c in want.items()})


def _first_ragged_row(path: Path, encoding: str, delim: str, n_fields: int, header: bool) -> str | None:
    """Error path only: the first data row whose field count is wrong, as "row N"."""
    try:
        with open(path, encoding="utf-8-sig" if encoding == "utf8" else encoding, newline="") as fh:
            rows = csv.reader(fh, delimiter=delim)
            if header:
                next(rows, None)
            n = 0
            for fields in rows:
                if not fields:
                    continue
                n += 1
                if len(fields) != n_fields:
                    return f"row {n}"
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return None


def _read_python(path: Path, label: str, sep: str, n_fields: int, cols: dict[str, int], header: bool) -> pd.DataFrame:
    """pandas' python engine for literal multi-character separators; everything as text."""
    last: Exception | None = None
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            df = pd.read_csv(
                path,
                sep=re.escape(sep),
                engine="python",
                header=None,
                skiprows=1 if header else 0,
                names=list(range(n_fields)),
                usecols=sorted(set(cols.values())),
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                quoting=csv.QUOTE_NONE,
                encoding=encoding,
                on_bad_lines="error",
            )
            break
        except UnicodeDecodeError as e:
            last = e
        except (pd.errors.ParserError, ValueError) as e:
            raise DataError(f"{label}: malformed line ({one_line(e)}); every line needs {n_fields} fields") from e
    else:  # pragma: no cover - latin-1 decodes any byte
        raise DataError(f"{label}: cannot decode the file ({last})")
    return pd.DataFrame({role: df[pos].fillna("") for role, pos in cols.items()})


# -- conversion ------------------------------------------------------------------------
def _build(
    frame: pd.DataFrame,
    roles: Mapping[str, ColumnKey],
    label: str,
    where: Where,
    min_rating: float | None,
    info: dict[str, Any],
    keep_source_row: bool = False,
) -> Interactions:
    n = len(frame)
    if n == 0:
        raise DataError(f"{label}: no rows")
    ids = {}
    for role in ("user", "item"):
        what = f"{label}: {role} column {roles[role]!r}"
        ids[role] = _typed_ids(frame[role], what, where) if info["typed_ids"] else _text_ids(frame[role], what, where)
        bad = first_bad_text_id(ids[role]) if ids[role].dtype == object else None
        if bad is not None:  # NUL and other control characters, lone surrogates, invisible-only ids
            pos = _first_bad(np.asarray(pd.Series(ids[role], dtype=object) == bad[0], dtype=bool))
            raise DataError(f"{what}: id at {where(pos)} {bad[1]}; clean or drop it")
    ratings = None
    if "rating" in roles:
        ratings = _numbers(frame["rating"], f"{label}: rating column {roles['rating']!r}", where, "rating")
    timestamps = None
    if "timestamp" in roles:
        timestamps = _timestamps(frame["timestamp"], f"{label}: timestamp column {roles['timestamp']!r}", where)

    below = 0
    rows = np.arange(n, dtype=np.int64) if keep_source_row else None
    if min_rating is not None:
        assert ratings is not None
        keep = ratings >= min_rating
        below = int(n - keep.sum())
        if below == n:
            raise DataError(
                f"{label}: no rows left after min_rating={min_rating!r} "
                f"(ratings range from {ratings.min():g} to {ratings.max():g})"
            )
        if below:
            ids = {k: v[keep] for k, v in ids.items()}
            ratings = ratings[keep]
            timestamps = None if timestamps is None else timestamps[keep]
            rows = None if rows is None else rows[keep]

    user_map, u = IdMap.from_values(ids["user"], name="user")
    item_map, i = IdMap.from_values(ids["item"], name="item")
    report: dict[str, Any] = {
        "source": label,
        "format": info["format"],
        "rows_read": n,
        "rows_below_min_rating": below,
        "duplicates_merged": 0,
        "columns": {k: _jsonable(v) for k, v in roles.items()},
    }
    if "sep" in info:
        report["sep"] = info["sep"]
    if min_rating is not None:
        report["min_rating"] = float(min_rating)
    return Interactions.from_indices(user_map, item_map, u, i, timestamps, ratings, report=report, source_row=rows)


def _jsonable(v: Any) -> Any:
    return int(v) if isinstance(v, (int, np.integer)) else str(v)


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _text_ids(s: pd.Series, what: str, where: Where) -> np.ndarray:
    """Ids read as text: strip, refuse empties, int64 when every id is a plain integer (Arrow kernels)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pc.utf8_trim_whitespace(pa.array(s.astype(str), type=pa.string()))
    empty = pc.equal(arr, "").to_numpy(zero_copy_only=False)
    if empty.any():
        raise DataError(f"{what}: missing (empty) id at {where(_first_bad(empty))}")
    is_int = pc.match_substring_regex(arr, f"^{_INT_RE}$")
    if pc.all(is_int).as_py():
        return pc.cast(arr, pa.int64()).to_numpy()
    na = pc.is_in(arr, value_set=pa.array(_NA_TOKENS)).to_numpy(zero_copy_only=False)
    if na.any() and pc.all(pc.or_(is_int, pa.array(na))).as_py():
        pos = _first_bad(na)
        raise DataError(
            f"{what}: missing id ({arr[pos].as_py()!r}) at {where(pos)} in a column of integer ids; "
            "drop the rows without an id (read as text, it would turn every id into a string)"
        )
    return arr.to_numpy(zero_copy_only=False).astype(object)


def _typed_ids(s: pd.Series, what: str, where: Where) -> np.ndarray:
    """Ids from a typed source (DataFrame/Parquet): keep their type, strip strings."""
    missing = s.isna().to_numpy(dtype=bool)
    if missing.any():
        raise DataError(f"{what}: missing id at {where(_first_bad(missing))}")
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(s.dtype.categories.dtype)  # the categories' own type: ints stay ints, floats floats
    if pd.api.types.is_string_dtype(s.dtype) or s.dtype == object:
        try:
            arr, kind = _as_id_array(s.to_numpy(dtype=object), "id")
        except DataError as e:
            raise DataError(f"{what}: {e}") from e
        if kind == "int":
            return arr
        s = pd.Series(arr, dtype=object).str.strip()
        empty = (s == "").to_numpy(dtype=bool)
        if empty.any():
            raise DataError(f"{what}: missing (empty) id at {where(_first_bad(empty))}")
        return s.to_numpy(dtype=object)
    try:
        arr, _ = _as_id_array(s.to_numpy(), "id")
    except DataError as e:
        raise DataError(f"{what}: {e}") from e
    return arr


def _describe_bad(raw: Any) -> str:
    if raw is None or raw is pd.NA or raw is pd.NaT:
        return "is missing"
    if isinstance(raw, (float, np.floating)) and np.isnan(raw):
        return "is missing or NaN"
    if isinstance(raw, str):
        if not raw.strip():
            return "is missing (empty)"
        try:
            float(raw)
        except ValueError:
            return f"is not a number: {raw!r}"
        return f"is not finite: {raw!r}"
    if isinstance(raw, (float, np.floating)):
        return f"is not finite ({float(raw)})"
    return f"is not a number: {raw!r}"


def _numbers(s: pd.Series, what: str, where: Where, noun: str) -> np.ndarray:
    """Float64 values of a numeric (or numeric-text) column; first bad row raises."""
    if pd.api.types.is_bool_dtype(s.dtype) or (
        pd.api.types.is_numeric_dtype(s.dtype) and not isinstance(s.dtype, pd.CategoricalDtype)
    ):
        values = s.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        text = s.str.strip() if pd.api.types.is_string_dtype(s.dtype) else s
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        pos = _first_bad(bad)
        raw = s.iloc[pos]
        raise DataError(f"{what}: {noun} at {where(pos)} {_describe_bad(raw)}")
    return values


def _dt_seconds(dt: pd.Series) -> np.ndarray:
    if getattr(dt.dt, "tz", None) is not None:
        dt = dt.dt.tz_convert("UTC").dt.tz_localize(None)
    # In the column's own unit: converting year-1 dates to nanoseconds would overflow.
    arr = dt.to_numpy()
    unit = np.datetime_data(arr.dtype)[0]
    secs = (arr - np.datetime64(0, unit)) / np.timedelta64(1, "s")
    return np.where(np.isnat(arr), np.nan, secs).astype(np.float64)


def _timestamps(s: pd.Series, what: str, where: Where) -> np.ndarray:
    """Float epoch seconds from numbers, datetimes or date/time strings."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        values = _dt_seconds(s)
        bad = ~np.isfinite(values)
        if bad.any():
            raise DataError(f"{what}: timestamp at {where(_first_bad(bad))} is missing")
        return values
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return _numbers(s, what, where, "timestamp")
    text = s.astype(str).str.strip() if pd.api.types.is_string_dtype(s.dtype) else s
    numeric = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    ok = np.isfinite(numeric)
    if ok.all():
        return numeric
    first = text.iloc[0]
    if ok[0] or first is None or (isinstance(first, str) and not first.strip()):
        # Numbers (epoch seconds) column: name the first entry that is not one.
        return _numbers(s, what, where, "timestamp")
    from pandas.tseries.api import guess_datetime_format

    best = None
    # ISO 8601, else the one format pandas infers from the first entry. Without an inferable
    # format nothing is guessed per entry: "1,5" is a bad number, not 5 January of year 1.
    for fmt in ("ISO8601", guess_datetime_format(str(first).strip())):
        if fmt is None:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                dt = pd.to_datetime(text, errors="coerce", utc=True, format=fmt)
            except (ValueError, TypeError):
                continue
        values = _dt_seconds(dt)
        if best is None or np.isfinite(values).sum() > np.isfinite(best).sum():
            best = values
        if np.isfinite(values).all():
            return values
    bad = ~np.isfinite(best) if best is not None else np.ones(len(s), dtype=bool)
    pos = _first_bad(bad)
    raw = s.iloc[pos]
    desc = "is missing (empty)" if isinstance(raw, str) and not raw.strip() else f"is not a date/time: {raw!r}"
    raise DataError(f"{what}: timestamp at {where(pos)} {desc}")
