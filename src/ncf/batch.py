"""Batch recommendations to a file: users streamed in chunks, written atomically.

Rows are ``user,item,rank,score`` with raw ids, rank 1..k best first. Users whose
rankable items run out before ``k`` simply get fewer rows. The output goes to a
temporary file beside the target, which is fsynced and renamed over the target at the
end, so a crash never leaves a partial file under the target name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ncf.base import Recommender
from ncf.checks import check_int
from ncf.data.io import PARQUET_SUFFIXES
from ncf.errors import ConfigError
from ncf.fsutil import atomic_path

__all__ = ["CSV_SUFFIXES", "PARQUET_SUFFIXES", "check_target", "write_recommendations", "write_table"]

CSV_SUFFIXES = (".csv",)
COLUMNS = ("user", "item", "rank", "score")


def _format_for(out: Path) -> str:
    suffix = out.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    allowed = ", ".join(CSV_SUFFIXES + PARQUET_SUFFIXES)
    raise ConfigError(f"cannot tell the output format of {out} from its suffix {suffix!r}; use one of {allowed}")


def check_target(out: str | os.PathLike[str], flag: str = "out") -> Path:
    """The output file, checked before any scoring: a known suffix and a writable place (ConfigError)."""
    from ncf.persist import check_output_path

    target = check_output_path(out, kind="file", flag=flag)
    _format_for(target)
    return target


def _chunk_frames(
    model: Recommender, users: np.ndarray, k: int, filter_seen: bool, chunk_users: int
) -> Iterator[pd.DataFrame]:
    """One DataFrame per chunk of users, built with vectorised numpy (no per-row Python)."""
    item_int = model.item_map_.kind == "int"
    ranks = np.arange(1, k + 1, dtype=np.int32)
    for start in range(0, len(users), chunk_users):
        chunk = users[start : start + chunk_users]
        ids, scores = model.recommend(chunk, k=k, filter_seen=filter_seen)
        flat_ids = np.asarray(ids).ravel()
        if flat_ids.dtype == object:
            valid = np.not_equal(flat_ids, None)
            flat_ids = flat_ids[valid]
            if item_int:
                flat_ids = flat_ids.astype(np.int64)
        else:
            valid = np.ones(flat_ids.shape, dtype=bool)
        yield pd.DataFrame(
            {
                "user": np.repeat(chunk, k)[valid],
                "item": flat_ids,
                "rank": np.tile(ranks, len(chunk))[valid],
                "score": np.asarray(scores, dtype=np.float32).ravel()[valid],
            },
            columns=list(COLUMNS),
        )


def _write_csv(tmp: Path, frames: Iterator[pd.DataFrame]) -> int:
    n = 0
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        header = True
        for df in frames:
            if header or len(df):
                df.to_csv(fh, header=header, index=False, lineterminator="\n")
            header = False
            n += len(df)
        if header:  # no chunks at all (no users): still write the header line
            pd.DataFrame(columns=list(COLUMNS)).to_csv(fh, index=False, lineterminator="\n")
    return n


def _write_parquet(tmp: Path, frames: Iterator[pd.DataFrame], user_int: bool, item_int: bool) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("user", pa.int64() if user_int else pa.string()),
            ("item", pa.int64() if item_int else pa.string()),
            ("rank", pa.int32()),
            ("score", pa.float32()),
        ]
    )
    n = 0
    with pq.ParquetWriter(tmp, schema) as writer:
        for df in frames:
            if len(df):
                writer.write_table(pa.Table.from_pandas(df, schema=schema, preserve_index=False))
            n += len(df)
    return n


def write_recommendations(
    model: Recommender,
    out: str | os.PathLike[str],
    *,
    users: Sequence[Any] | np.ndarray | None = None,
    k: int = 10,
    filter_seen: bool = True,
    chunk_users: int = 4096,
) -> int:
    """Write the top-``k`` items of ``users`` (default: every user of the model) to ``out``.

    Parameters
    ----------
    model:
        A fitted (or loaded) :class:`ncf.NCF` or baseline.
    out:
        Target file; ``.csv`` writes CSV with one header line, ``.parquet``/``.pq`` writes
        Parquet with one row group per chunk.
    users:
        Raw user ids; unknown ids raise :class:`~ncf.errors.UnknownIdError` before
        anything is written.
    k:
        Items per user (>= 1).
    filter_seen:
        Leave out items each user interacted with in training.
    chunk_users:
        Users scored and written per chunk; memory stays flat in the number of users.

    Returns
    -------
    int
        The number of rows written.
    """
    model.check_fitted()
    target = check_target(out)
    fmt = _format_for(target)
    k = check_int("k", k)
    chunk_users = check_int("chunk_users", chunk_users)
    umap = model.user_map_
    if users is None:
        raw_users = umap.ids
    else:
        # Validate every id up front (UnknownIdError) and normalise them to the map's type.
        raw_users = umap.raw(umap.index(list(users)))

    frames = _chunk_frames(model, raw_users, k, filter_seen, chunk_users)

    with atomic_path(target) as tmp:
        if fmt == "csv":
            rows = _write_csv(tmp, frames)
        else:
            rows = _write_parquet(tmp, frames, umap.kind == "int", model.item_map_.kind == "int")
    return rows


def write_table(df: pd.DataFrame, out: str | os.PathLike[str]) -> int:
    """Write a small table (e.g. fold-in recommendations with a ``because`` column) to ``out``, atomically.

    ``.csv`` or ``.parquet``/``.pq`` as :func:`write_recommendations`; returns the number of rows.
    """
    target = check_target(out)
    with atomic_path(target) as tmp:
        if _format_for(target) == "csv":
            df.to_csv(tmp, index=False, lineterminator="\n")
        else:
            df.to_parquet(tmp, index=False)
    return len(df)
