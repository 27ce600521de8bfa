"""IdMap: raw ids (ints or strings, as the user gave them) <-> contiguous indices.

One map per axis (users, items). Lookups are vectorised through a pandas Index, so
mapping a million ids costs one hash-table probe per id in C, never a Python loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from ncf.errors import DataError, UnknownIdError

IdKind = Literal["int", "str"]


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
            return arr.astype(np.int64), "int"
        numeric = types.map(lambda t: issubclass(t, (int, float, np.integer, np.floating)) and t not in (bool, np.bool_))
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
        """Convert text ids (from a URL or a CLI flag) to this map's id type where possible."""
        out: list[Any] = []
        for v in values:
            if self.kind == "int" and isinstance(v, str):
                try:
                    out.append(int(v.strip()))
                    continue
                except ValueError:
                    pass
            elif self.kind == "str" and not isinstance(v, str):
                v = str(v)
            out.append(v)
        return out

    def index(
        self, raw: Any, missing: Literal["error", "negative"] = "error"
    ) -> np.ndarray:
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
        if offsets.ndim != 1 or len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(data) or (np.diff(offsets) < 0).any():
            raise DataError(f"corrupt {name} id table: offsets do not match the id bytes")
        ids = np.array([data[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])], dtype=object)
        return cls(ids, name=name)
