"""IdMap: raw ids (ints or strings, as the user gave them) <-> contiguous indices.

One map per axis (users, items). Lookups are vectorised through a pandas Index, so
mapping a million ids costs one hash-table probe per id in C, never a Python loop.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from ncf.errors import DataError, UnknownIdError

IdKind = Literal["int", "str"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: An integer id written as text: ASCII digits, an optional "-", no leading zeros, no "-0"
#: (which would merge with the distinct id "0"), no "+", "_", spaces or non-ASCII digits.
INT_ID_PATTERN = r"(?:0|-?[1-9][0-9]*)"
_INT_ID = re.compile(INT_ID_PATTERN)
# Characters no id may hold: C0/C1 controls (NUL, tab, newline, DEL, ...) and lone UTF-16
# surrogates (not Unicode text: they cannot be written as UTF-8, in a bundle or a JSON answer).
_BAD_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# An id made only of these looks empty: whitespace and invisible format characters.
_BLANK = re.compile(r"[\s\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]*")


def parse_int_id(text: str) -> int | None:
    """``text`` as an integer id, or None: the one rule for ids typed at the CLI or sent over HTTP.

    Only canonical ASCII integers within int64 qualify (``"196"``, ``"-3"``); ``"+196"``,
    ``"1_96"``, ``" 196"``, ``"0196"``, ``"-0"``, full-width or Arabic-Indic digits, and
    integers beyond int64 do not (they stay text, so they never silently become user 196).
    """
    if not isinstance(text, str) or not _INT_ID.fullmatch(text):
        return None
    v = int(text)
    return v if INT64_MIN <= v <= INT64_MAX else None


def id_text_problem(s: str) -> str | None:
    """Why the string ``s`` cannot be an id (a control character, a lone surrogate, looks empty), or None."""
    m = _BAD_CHAR.search(s)
    if m is not None:
        ch = m.group()
        if "\ud800" <= ch <= "\udfff":
            return f"contains a lone surrogate {ch!r}, which is not valid Unicode text"
        return f"contains the control character {ch!r}"
    if _BLANK.fullmatch(s):
        return "is empty or only spaces/invisible characters"
    return None


def first_bad_text_id(values: Any) -> tuple[Any, str] | None:
    """The first string among ``values`` that cannot be an id, with the reason; None when all can."""
    strs = [v for v in pd.unique(pd.Series(values, dtype=object)) if isinstance(v, str)]
    # One regex scan over all the text, and a blank test that fails on the first character of
    # any ordinary id: a million ids cost a fraction of a second.
    if _BAD_CHAR.search("".join(strs)) is None and not any(_BLANK.fullmatch(v) for v in strs):
        return None
    for v in strs:
        problem = id_text_problem(v)
        if problem is not None:
            return v, problem
    return None  # pragma: no cover - the scan above found one


def _beyond_int64(arr: np.ndarray) -> bool:
    """Whether an unsigned-int or object array of ints holds a value outside int64."""
    if arr.dtype.kind == "u":
        return arr.dtype.itemsize >= 8 and bool(arr.size) and int(arr.max()) > INT64_MAX
    return any(not INT64_MIN <= int(v) <= INT64_MAX for v in arr)


def _as_id_array(values: Any, what: str = "id") -> tuple[np.ndarray, IdKind]:
    """Normalise raw ids to an int64 array or an object array of str.

    Integral floats (pandas turns an int column with gaps into float) become ints.
    Anything else that is not an int or a str is refused: ids of mixed or odd types
    would silently never match later.
    """
    if isinstance(values, (pd.Series, pd.Index)):
        arr = values.to_numpy()
    else:
        arr = np.asarray(values if not isinstance(values, (str, bytes)) else [values])
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.dtype.kind in "iu":
        if arr.dtype.kind == "u" and _beyond_int64(arr):
            # uint64 beyond int64 would wrap to a different (negative) id: keep every id as its decimal text.
            return np.array([str(v) for v in arr.tolist()], dtype=object), "str"
        return arr.astype(np.int64, copy=False), "int"
    if arr.dtype.kind == "b":
        raise DataError(f"{what}s are booleans; ids must be integers or strings")
    if arr.dtype.kind == "f":
        if arr.size and not np.isfinite(arr).all():
            raise DataError(f"{what}s contain missing (NaN) or infinite values; drop those rows first")
        if arr.size and (np.abs(arr) >= 2**63).any():
            raise DataError(f"{what}s contain values too large for a 64-bit integer id; store them as strings")
        if arr.size and not (arr == np.round(arr)).all():
            raise DataError(f"{what}s are non-integral numbers; ids must be integers or strings")
        return arr.astype(np.int64), "int"
    if arr.dtype.kind in "US":
        return arr.astype(str).astype(object), "str"
    if arr.dtype.kind == "O":
        if arr.size == 0:
            return arr, "str"
        types = pd.Series(arr, dtype=object).map(type)
        if types.isin([int, np.int64, np.int32]).all():
            if _beyond_int64(arr):  # Python ints past int64: their decimal text, never an overflow or a wrap
                return np.array([str(int(v)) for v in arr], dtype=object), "str"
            return arr.astype(np.int64), "int"
        numeric = types.map(
            lambda t: issubclass(t, (int, float, np.integer, np.floating)) and t not in (bool, np.bool_)
        )
        if numeric.all():  # python ints and floats in an object column: judge them as floats, if exact
            if any(isinstance(v, (int, np.integer)) and abs(int(v)) > 2**53 for v in arr):
                raise DataError(
                    f"{what}s mix floats and integers too large to convert exactly; "
                    "convert the column to one type, e.g. df[col].astype('int64') or .astype(str)"
                )
            return _as_id_array(np.array(arr.tolist(), dtype=np.float64), what)
        is_str = types == str  # noqa: E721 - elementwise on a Series
        if is_str.all():
            return arr, "str"
        bad = arr[~is_str.to_numpy()][:5]
        if pd.isna(pd.Series(bad, dtype=object)).any():
            raise DataError(f"{what}s contain missing values; drop or fill those rows first")
        raise DataError(
            f"{what}s mix strings and other types (e.g. {list(bad)!r}); "
            "convert the column to one type, e.g. df[col].astype(str)"
        )
    raise DataError(f"{what}s have unsupported dtype {arr.dtype}; use integers or strings")


class IdMap:
    """A bijection between raw ids and ``0..n-1``.

    Parameters
    ----------
    ids:
        Unique raw ids, in index order (``ids[i]`` has index ``i``).

    Notes
    -----
    Ids keep their type: a map built from ints answers ints, from strings answers
    strings. ``kind`` ("int" or "str") lets edges such as a URL coerce text to the
    right type with :meth:`coerce`.
    """

    def __init__(self, ids: Sequence[Any] | np.ndarray, *, name: str = "id") -> None:
        arr, kind = _as_id_array(ids, name)
        self.name = name
        self.kind: IdKind = kind
        if kind == "str":
            bad = first_bad_text_id(arr)
            if bad is not None:
                raise DataError(f"{name} id {bad[0]!r} {bad[1]}; clean or drop it")
        self._index = pd.Index(arr, dtype=np.int64 if kind == "int" else object)
        if not self._index.is_unique:
            dup = self._index[self._index.duplicated()][:5].tolist()
            raise DataError(f"{name} ids in an IdMap must be unique; duplicated: {dup}")

    @classmethod
    def from_values(cls, values: Any, *, name: str = "id") -> tuple[IdMap, np.ndarray]:
        """Build a map from raw values (with repeats); return it and each value's index.

        Ids are ordered by sorted value so the same set of ids always gets the same map.
        """
        arr, kind = _as_id_array(values, name)
        codes, uniques = pd.factorize(arr, sort=True)
        return cls(np.asarray(uniques), name=name), codes.astype(np.int64)

    def __len__(self) -> int:
        return len(self._index)

    def extend(self, ids: Any) -> IdMap:
        """A new map: this one's ids at their indices, then the ids of ``ids`` it lacks, appended
        in sorted order (so the same new ids always get the same indices). Repeats are fine.

        The map itself is not changed. ``ids`` must be of this map's kind (int or str):
        :class:`DataError` otherwise, since ``"196"`` and ``196`` would silently be two users.
        """
        arr, kind = _as_id_array(ids, self.name)
        if len(arr) and kind != self.kind:
            words = {"int": "integers", "str": "strings"}
            raise DataError(
                f"new {self.name} ids are {words[kind]} but this map holds {words[self.kind]}; "
                f"load them as {words[self.kind]} (e.g. df[col].astype({'str' if self.kind == 'str' else 'int64'!r}))"
            )
        fresh = np.sort(pd.unique(arr[self._index.get_indexer(arr) < 0])) if len(arr) else arr
        if not len(fresh):
            return self
        return IdMap(np.concatenate([self.ids, fresh]), name=self.name)

    def __repr__(self) -> str:
        return f"IdMap(name={self.name!r}, kind={self.kind!r}, n={len(self)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self.kind == other.kind and self._index.equals(other._index)

    __hash__ = None  # type: ignore[assignment]

    @property
    def ids(self) -> np.ndarray:
        """All raw ids in index order."""
        return self._index.to_numpy()

    def coerce(self, values: Iterable[Any]) -> list[Any]:
        """Convert ids from a URL, a JSON body or a CLI flag to this map's id type where that is exact.

        For int ids, text becomes an int only by :func:`parse_int_id` (canonical ASCII digits within
        int64); other text, and ints beyond int64, stay as they are or as text, so they are
        simply unknown ids, never a different id. For string ids, ints become their decimal text.
        """
        out: list[Any] = []
        for v in values:
            if self.kind == "int":
                if isinstance(v, str):
                    parsed = parse_int_id(v)
                    v = v if parsed is None else parsed
                elif isinstance(v, int) and not isinstance(v, bool) and not INT64_MIN <= v <= INT64_MAX:
                    v = str(v)
            elif not isinstance(v, str):
                v = str(v)
            out.append(v)
        return out

    def index(self, raw: Any, missing: Literal["error", "negative"] = "error") -> np.ndarray:
        """Indices of raw ids. Unknown ids raise :class:`UnknownIdError` or map to -1."""
        scalar = np.ndim(raw) == 0 and not isinstance(raw, (list, tuple))
        values = [raw] if scalar else raw
        try:
            arr, kind = _as_id_array(values, self.name)
        except DataError:
            arr, kind = np.asarray(list(values), dtype=object), "str"
        if len(arr) == 0:
            return np.zeros(0, dtype=np.int64)
        if kind != self.kind:
            idx = np.full(len(arr), -1, dtype=np.int64)
        else:
            idx = self._index.get_indexer(arr).astype(np.int64)
        if missing == "error" and (idx < 0).any():
            unknown = pd.unique(pd.Series(np.asarray(arr, dtype=object)[idx < 0], dtype=object)).tolist()
            hint = f"this model knows {len(self)} {self.name}s"
            if kind != self.kind:
                hint += f" with {self.kind} ids, got {kind} ids"
            raise UnknownIdError(self.name, unknown, hint)
        return idx

    def raw(self, idx: Any) -> np.ndarray:
        """Raw ids of indices (vectorised); -1 is not allowed."""
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"{self.name} index out of range [0, {len(self)})")
        return self.ids[idx]

    # -- persistence helpers: plain arrays, never pickle ---------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Arrays that rebuild this map: int64 ids, or utf-8 bytes plus offsets for strings."""
        if self.kind == "int":
            return {"ids": self.ids.astype(np.int64)}
        encoded = [s.encode("utf-8") for s in self.ids]
        lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        data = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
        return {"utf8": data, "offsets": offsets}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], *, name: str = "id") -> IdMap:
        if "ids" in arrays:
            return cls(np.asarray(arrays["ids"], dtype=np.int64), name=name)
        data = bytes(np.asarray(arrays["utf8"], dtype=np.uint8))
        offsets = np.asarray(arrays["offsets"], dtype=np.int64)
        if (
            offsets.ndim != 1
            or len(offsets) == 0
            or offsets[0] != 0
            or offsets[-1] != len(data)
            or (np.diff(offsets) < 0).any()
        ):
            raise DataError(f"corrupt {name} id table: offsets do not match the id bytes")
        ids = np.array([data[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])], dtype=object)
        return cls(ids, name=name)
