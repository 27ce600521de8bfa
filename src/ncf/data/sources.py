"""One entry point for every data source the apps accept: ``load_data("ml-100k")``, a MovieLens
zip or folder, or a CSV/TSV/Parquet file whose user and item columns are guessed when not given.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ncf.data.interactions import Interactions
from ncf.data.io import PARQUET_SUFFIXES, load_interactions, readable_source
from ncf.data.movielens import load_movielens, movielens_100k
from ncf.errors import DataError

__all__ = ["load_data"]

USER_COLUMNS = ("user", "user_id", "userid", "userId")
ITEM_COLUMNS = ("item", "item_id", "itemid", "movieId")


def load_data(
    source: str | os.PathLike[str],
    *,
    user: str | None = None,
    item: str | None = None,
    rating: str | None = None,
    timestamp: str | None = None,
    min_rating: float | None = None,
    sep: str | None = None,
) -> Interactions:
    """Interactions from ``"ml-100k"``, a MovieLens zip/folder, or a CSV/TSV/Parquet file.

    Parameters
    ----------
    source:
        ``"ml-100k"`` (fetched and verified on first use), a MovieLens ``.zip`` or folder,
        ``ratings.dat``/``ratings.csv``, or any file :func:`~ncf.data.io.load_interactions` reads.
    user, item:
        Id columns of a file. When omitted, the first header found among ``user``,
        ``user_id``, ``userid``, ``userId`` (``item``, ``item_id``, ``itemid``, ``movieId``),
        compared case-insensitively, else ``user`` (``item``). Giving either one reads a
        MovieLens-named file as a plain ratings file.
    rating, timestamp, sep:
        As in :func:`~ncf.data.io.load_interactions` (``sep`` is sniffed when omitted).
    min_rating:
        Keep ratings >= this as positives (every source).
    """
    if str(source) == "ml-100k":
        return movielens_100k(min_rating=min_rating)
    if not Path(source).exists():
        raise DataError(f"data file {source} does not exist; give a CSV/TSV/Parquet path or 'ml-100k'")
    # A pipe (/dev/stdin, <(zcat ...), a FIFO) is read once, a compressed file decompressed once:
    # the column guess and the loader then read the same regular file.
    with readable_source(source) as src:
        return _load_file(src, user, item, rating, timestamp, min_rating, sep)


def _load_file(
    src: str | os.PathLike[str],
    user: str | None,
    item: str | None,
    rating: str | None,
    timestamp: str | None,
    min_rating: float | None,
    sep: str | None,
) -> Interactions:
    path = Path(src)
    explicit = bool(user or item)
    looks_movielens = path.suffix == ".zip" or path.is_dir() or path.name in ("ratings.dat", "ratings.csv")
    if looks_movielens and not explicit:
        try:
            return load_movielens(src, min_rating=min_rating)
        except DataError:
            if not path.is_file() or path.suffix == ".zip":
                raise
            # only named like MovieLens: read it as any ratings file (that names the real problem)
    if user is None or item is None:
        user, item = guess_columns(path, sep, user, item)
    return load_interactions(
        src, user=user, item=item, rating=rating, timestamp=timestamp, min_rating=min_rating, sep=sep
    )


def guess_columns(path: Path, sep: str | None, user: str | None, item: str | None) -> tuple[str, str]:
    """Default user and item column names; the loader reports the columns found if they are wrong."""
    import pandas as pd

    cols: list[str] = []
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:  # as load_interactions decides
            import pyarrow.parquet as pq

            cols = list(pq.read_schema(path).names)
        else:
            cols = list(pd.read_csv(path, sep=sep, engine="python", nrows=0).columns)
    except Exception:  # noqa: BLE001 - the loader gives the real error
        pass
    lower = {c.lower().strip(): c for c in cols}

    def pick(given: str | None, names: Sequence[str]) -> str:
        if given is not None:
            return given
        for n in names:
            if n.lower() in lower:
                return lower[n.lower()]
        return names[0]

    return pick(user, USER_COLUMNS), pick(item, ITEM_COLUMNS)
