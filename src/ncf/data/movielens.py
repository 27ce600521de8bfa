"""MovieLens loaders: the verified ML-100k (cached), and ML-1M/10M/20M/25M from a local copy.

MovieLens-100k is looked for, in order, in

1. the cache ``<data_dir>/ml-100k/`` (``data_dir`` argument, else ``$NCF_DATA_DIR``, else
   ``~/.cache/ncf``), holding ``ratings.csv``, ``items.csv`` and ``manifest.json``;
2. ``source=``: a GroupLens ``ml-100k`` folder or ``ml-100k.zip`` (``u.data`` + ``u.item``);
3. the GroupLens download (short timeout; skipped when ``NCF_OFFLINE`` is set);
4. the identical copy shipped in the ``recbole==1.2.1`` wheel on PyPI (via ``pip download``;
   skipped when ``NCF_OFFLINE`` is set).

Whatever the origin, the ratings must hash to :data:`ML100K_SHA256` (100,000 rows in
``u.data`` order) before they are cached or returned, so every machine trains on the
same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import warnings
import zipfile
from dataclasses import replace
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ncf.data.interactions import Interactions
from ncf.data.io import load_interactions
from ncf.errors import DataError
from ncf.fsutil import atomic_write

__all__ = [
    "ML100K_GENRES",
    "ML100K_SHA256",
    "ML100K_URL",
    "default_data_dir",
    "fetch_movielens_100k",
    "load_movielens",
    "movielens_100k",
]

#: sha256 of the canonical ML-100k ratings: the rows of ``u.data`` in file order, written
#: as ``f"{user}\t{item}\t{rating}\t{timestamp}\n"`` with integers, utf-8.
ML100K_SHA256 = "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"
ML100K_ROWS, ML100K_USERS, ML100K_ITEMS = 100_000, 943, 1_682
ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
RECBOLE_SPEC = "recbole==1.2.1"
_RECBOLE_DIR = "recbole/dataset_example/ml-100k/"
_DOWNLOAD_TIMEOUT_S = 5.0
_PIP_TIMEOUT_S = 300
_CACHE_FORMAT = 2
_RATING_COLS = ["user", "item", "rating", "timestamp"]
_ITEM_COLS = ["item", "title", "year", "genres"]
# "Toy Story (1995)"; ML-100k item 1412 ends in "(1995) (V)" (a video release).
_TITLE_YEAR = r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)(?:\s*\(V\))?\s*$"
_FIX_HINT = (
    "fix: download ml-100k.zip from https://grouplens.org/datasets/movielens/100k/ and pass "
    "source='path/to/ml-100k.zip' (or run `ncf data fetch ml-100k` on a machine with internet access)"
)

PathArg = str | PathLike[str]


# -- public ----------------------------------------------------------------------------
def default_data_dir(data_dir: PathArg | None = None) -> Path:
    """The cache root: ``data_dir``, else ``$NCF_DATA_DIR``, else ``~/.cache/ncf``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("NCF_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "ncf"


def movielens_100k(
    data_dir: PathArg | None = None,
    source: PathArg | None = None,
    *,
    min_rating: float | None = None,
) -> Interactions:
    """MovieLens-100k: 100,000 ratings of 1,682 movies by 943 users, verified by checksum.

    Parameters
    ----------
    data_dir:
        Cache root (``<data_dir>/ml-100k/``); default ``$NCF_DATA_DIR`` or ``~/.cache/ncf``.
    source:
        A GroupLens ``ml-100k`` folder (or its parent) or ``ml-100k.zip``, used when the
        cache is missing. If given and not a valid copy, :class:`DataError` is raised
        right away rather than falling back to the network.
    min_rating:
        Keep only ratings ``>= min_rating`` (e.g. 4 for "liked"); default keeps all.

    Returns
    -------
    Interactions
        Raw ids are ints; ``ratings``, ``timestamps`` and ``source_row`` (each rating's row
        in ``u.data``, for :func:`ncf.split.allbut`) are set; ``item_metadata`` is a
        DataFrame indexed by item id with ``title`` (str, year removed), ``year``
        (nullable Int64) and ``genres`` ("|"-joined, e.g. ``"Animation|Children's|Comedy"``).

    Raises
    ------
    DataError
        When no source gives the verified data; the message lists what was tried.
    """
    ratings, items, origin, where = _obtain(data_dir, source, require_cache=False)
    inter = load_interactions(
        ratings,
        user="user",
        item="item",
        rating="rating",
        timestamp="timestamp",
        min_rating=min_rating,
        keep_source_row=True,
    )
    report = {k: v for k, v in inter.report.items() if k not in ("format", "columns")}
    report.update(source=where, origin=origin, dataset="ml-100k", sha256=ML100K_SHA256)
    return replace(inter, report=report, item_metadata=_metadata(items))


def fetch_movielens_100k(data_dir: PathArg | None = None, *, source: PathArg | None = None) -> Path:
    """Fetch, verify and cache MovieLens-100k; return the cache folder ``<data_dir>/ml-100k``.

    Parameters
    ----------
    data_dir:
        Cache root; default ``$NCF_DATA_DIR`` or ``~/.cache/ncf``.
    source:
        Optional GroupLens folder or zip to take the data from (see :func:`movielens_100k`).

    Raises
    ------
    DataError
        When the data cannot be obtained or the cache cannot be written.
    """
    _obtain(data_dir, source, require_cache=True)
    return default_data_dir(data_dir) / "ml-100k"


def load_movielens(path: PathArg, *, min_rating: float | None = None) -> Interactions:
    """Load MovieLens-1M/10M (``ratings.dat``) or 20M/25M (``ratings.csv``) from a local copy.

    Parameters
    ----------
    path:
        The GroupLens zip, the extracted folder (or a folder holding exactly one such
        folder), or the ratings file itself.
    min_rating:
        Keep only ratings ``>= min_rating``.

    Returns
    -------
    Interactions
        Int ids, ratings and timestamps. ``item_metadata`` (title, year, genres, indexed by
        movie id) comes from ``movies.dat``/``movies.csv`` next to the ratings when present,
        else it is ``None``.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: not found; pass a MovieLens zip, its extracted folder or its ratings file")
    if p.is_file() and zipfile.is_zipfile(p):
        return _load_movielens_zip(p, min_rating)
    if p.is_dir():
        ratings_file = _find_ratings_in_dir(p)
    else:
        ratings_file = p
    inter = _load_ratings_file(ratings_file, min_rating, label=str(ratings_file))
    movies = _find_movies(ratings_file.parent)
    meta = _parse_movies(movies.read_bytes(), movies.name, str(movies)) if movies else None
    report = dict(inter.report, dataset="movielens")
    return replace(inter, report=report, item_metadata=meta)


# -- ML-1M/10M/20M/25M -----------------------------------------------------------------
_RATINGS_NAMES = ("ratings.dat", "ratings.csv")
_MOVIES_NAMES = ("movies.dat", "movies.csv")


def _find_ratings_in_dir(d: Path) -> Path:
    for name in _RATINGS_NAMES:
        if (d / name).is_file():
            return d / name
    subs = [s / name for s in sorted(d.iterdir()) if s.is_dir() for name in _RATINGS_NAMES if (s / name).is_file()]
    if len(subs) == 1:
        return subs[0]
    if len(subs) > 1:
        raise DataError(f"{d}: holds several MovieLens folders ({', '.join(str(s.parent) for s in subs)}); pick one")
    raise DataError(f"{d}: no ratings.dat or ratings.csv found (in it or in a folder inside it)")


def _find_movies(d: Path) -> Path | None:
    for name in _MOVIES_NAMES:
        if (d / name).is_file():
            return d / name
    return None


def _load_ratings_file(f: Path, min_rating: float | None, label: str) -> Interactions:
    if f.suffix.lower() == ".dat":
        inter = load_interactions(f, user=0, item=1, rating=2, timestamp=3, sep="::", min_rating=min_rating)
    else:
        inter = load_interactions(
            f, user="userId", item="movieId", rating="rating", timestamp="timestamp", sep=",", min_rating=min_rating
        )
    if inter.user_map.kind != "int" or inter.item_map.kind != "int":
        raise DataError(f"{label}: MovieLens ids must be integers; is this a MovieLens ratings file?")
    return replace(inter, report=dict(inter.report, source=label))


def _load_movielens_zip(p: Path, min_rating: float | None) -> Interactions:
    try:
        with zipfile.ZipFile(p) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
            ratings = [n for n in names if n.rsplit("/", 1)[-1] in _RATINGS_NAMES]
            if not ratings:
                raise DataError(f"{p}: the zip has no ratings.dat or ratings.csv")
            if len(ratings) > 1:
                raise DataError(f"{p}: the zip has several ratings files ({', '.join(ratings)})")
            member = ratings[0]
            folder = member.rsplit("/", 1)[0] + "/" if "/" in member else ""
            movies = next((folder + m for m in _MOVIES_NAMES if folder + m in names), None)
            with tempfile.TemporaryDirectory(prefix="ncf-movielens-") as tmp:
                target = Path(tmp) / member.rsplit("/", 1)[-1]
                with zf.open(member) as src, open(target, "wb") as dst:
                    while chunk := src.read(1 << 22):
                        dst.write(chunk)
                inter = _load_ratings_file(target, min_rating, label=f"{p}!{member}")
            meta = _parse_movies(zf.read(movies), movies, f"{p}!{movies}") if movies else None
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{p}: cannot read the zip ({e})") from e
    return replace(inter, report=dict(inter.report, dataset="movielens"), item_metadata=meta)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # ML-1M's movies.dat


def _parse_movies(data: bytes, name: str, label: str) -> pd.DataFrame:
    """movies.dat (``id::title::genres``) or movies.csv (``movieId,title,genres``)."""
    text = _decode(data)
    try:
        if name.endswith(".dat"):
            lines = pd.Series(text.splitlines(), dtype=object)
            lines = lines[lines.str.strip() != ""]
            parts = lines.str.split("::", n=2, expand=True)
            if parts.shape[1] != 3 or parts.isna().any().any():
                raise DataError(f"{label}: expected 'MovieID::Title::Genres' on every line")
            df = pd.DataFrame({"item": parts[0], "raw_title": parts[1], "genres": parts[2]})
        else:
            df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
            missing = {"movieId", "title", "genres"} - set(df.columns)
            if missing:
                raise DataError(f"{label}: missing column(s) {sorted(missing)}; columns found: {list(df.columns)}")
            df = df.rename(columns={"movieId": "item", "title": "raw_title"})
        item = pd.to_numeric(df["item"].str.strip(), errors="coerce")
        if item.isna().any():
            bad = int(np.flatnonzero(item.isna().to_numpy())[0])
            raise DataError(f"{label}: movie id at row {bad + 1} is not an integer: {df['item'].iloc[bad]!r}")
    except pd.errors.ParserError as e:
        raise DataError(f"{label}: cannot parse ({' '.join(str(e).split())})") from e
    title, year = _split_title(df["raw_title"])
    meta = pd.DataFrame(
        {"title": title.to_numpy(dtype=object), "year": year.to_numpy(), "genres": df["genres"].str.strip().to_numpy()},
        index=pd.Index(item.astype("int64").to_numpy(), name="item"),
    )
    meta["year"] = meta["year"].astype("Int64")
    return meta[~meta.index.duplicated(keep="first")]


def _split_title(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """'Toy Story (1995)' -> ('Toy Story', 1995); titles without a year keep their text."""
    raw = raw.astype(str).str.strip()
    parts = raw.str.extract(_TITLE_YEAR)
    has = parts["year"].notna()
    title = raw.where(~has, parts["title"])
    year = pd.to_numeric(parts["year"], errors="coerce").astype("Int64")
    return title, year


# -- ML-100k: obtaining ----------------------------------------------------------------
def _obtain(
    data_dir: PathArg | None, source: PathArg | None, *, require_cache: bool
) -> tuple[pd.DataFrame, pd.DataFrame, str, str]:
    """(ratings, items, origin, where) from the first source that verifies; caches it."""
    cache = default_data_dir(data_dir) / "ml-100k"
    tried: list[str] = []
    cached = _read_cache(cache, tried)
    if cached is not None:
        ratings, items, origin = cached
        return ratings, items, origin, str(cache / "ratings.csv")

    offline = bool(os.environ.get("NCF_OFFLINE"))
    got: tuple[pd.DataFrame, pd.DataFrame, str] | None = None
    if source is not None:
        ratings, items = _read_grouplens(Path(source))  # an explicit source that fails raises
        got = (ratings, items, f"source {source}")
    else:
        attempts = [
            (f"download {ML100K_URL}", _download_grouplens),
            (f"PyPI wheel {RECBOLE_SPEC} (pip download)", _download_recbole),
        ]
        for what, fetch in attempts:
            if offline:
                tried.append(f"{what}: skipped (NCF_OFFLINE is set)")
                continue
            try:
                ratings, items = fetch()
            except DataError as e:
                tried.append(f"{what}: {e}")
                continue
            got = (ratings, items, what.split(" (")[0])
            break
    if got is None:
        raise DataError("cannot obtain MovieLens-100k; tried " + "; ".join(tried) + "; " + _FIX_HINT)
    ratings, items, origin = got
    try:
        _write_cache(cache, ratings, items, origin)
    except OSError as e:
        msg = f"cannot write the MovieLens-100k cache {cache} ({e}); set data_dir= or NCF_DATA_DIR to a writable folder"
        if require_cache:
            raise DataError(msg) from e
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        return ratings, items, origin, origin
    return ratings, items, origin, str(cache / "ratings.csv")


def canonical_sha256(ratings: pd.DataFrame) -> str:
    """sha256 of ratings written as ``user\\titem\\trating\\ttimestamp\\n`` (ints, row order kept)."""
    text = ratings[_RATING_COLS].astype("int64").to_csv(sep="\t", header=False, index=False, lineterminator="\n")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _verify(ratings: pd.DataFrame, items: pd.DataFrame, label: str) -> None:
    n, nu, ni = len(ratings), ratings["user"].nunique(), ratings["item"].nunique()
    if (n, nu, ni) != (ML100K_ROWS, ML100K_USERS, ML100K_ITEMS):
        raise DataError(
            f"{label}: not MovieLens-100k: {n:,} ratings, {nu:,} users, {ni:,} items "
            f"(expected {ML100K_ROWS:,}, {ML100K_USERS:,}, {ML100K_ITEMS:,})"
        )
    digest = canonical_sha256(ratings)
    if digest != ML100K_SHA256:
        raise DataError(
            f"{label}: ratings checksum {digest[:12]}... does not match MovieLens-100k ({ML100K_SHA256[:12]}...)"
        )
    if len(items) != ML100K_ITEMS or not items["item"].is_unique:
        raise DataError(f"{label}: expected {ML100K_ITEMS:,} distinct movies in the item table, got {len(items):,}")


def _int_frame(df: pd.DataFrame, label: str) -> pd.DataFrame:
    """Ratings columns as int64; refuse anything that is not an integer."""
    out = {}
    for c in _RATING_COLS:
        v = pd.to_numeric(df[c], errors="coerce")
        if v.isna().any() or not (v == np.round(v)).all():
            raise DataError(f"{label}: column {c} holds values that are not integers")
        out[c] = v.astype("int64")
    return pd.DataFrame(out)


def _read_udata(data: bytes, label: str) -> pd.DataFrame:
    try:
        df = pd.read_csv(io.BytesIO(data), sep="\t", header=None, names=_RATING_COLS, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
        raise DataError(f"{label}: cannot parse ({' '.join(str(e).split())})") from e
    return _int_frame(df, label)


def _read_uitem(data: bytes, label: str) -> pd.DataFrame:
    """u.item: id|title (year)|release date|video date|url|19 genre flags, latin-1."""
    try:
        df = pd.read_csv(
            io.BytesIO(data),
            sep="|",
            header=None,
            encoding="latin-1",
            dtype=str,
            keep_default_na=False,
            quoting=3,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
        raise DataError(f"{label}: cannot parse ({' '.join(str(e).split())})") from e
    if df.shape[1] != 5 + len(ML100K_GENRES):
        raise DataError(f"{label}: expected {5 + len(ML100K_GENRES)} '|'-separated fields, got {df.shape[1]}")
    title, year = _split_title(df[1])
    release_year = pd.to_numeric(df[2].str.extract(r"(\d{4})\s*$")[0], errors="coerce").astype("Int64")
    year = year.fillna(release_year)
    flags = df.iloc[:, 5:].apply(lambda c: c.str.strip() == "1").to_numpy()
    genres = _join_genres(flags)
    item = pd.to_numeric(df[0], errors="coerce")
    if item.isna().any():
        raise DataError(f"{label}: movie ids must be integers")
    return pd.DataFrame({"item": item.astype("int64"), "title": title, "year": year, "genres": genres})


def _join_genres(flags: np.ndarray) -> np.ndarray:
    """Boolean (n, 19) genre flags -> "|"-joined names in ML100K_GENRES order (loop over genres, not rows)."""
    out = np.full(flags.shape[0], "", dtype=object)
    for k, g in enumerate(ML100K_GENRES):
        out = out + np.where(flags[:, k], g + "|", "")
    return pd.Series(out, dtype=object).str[:-1].to_numpy(dtype=object)


def _read_grouplens(src: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """u.data + u.item from a GroupLens ml-100k folder (or its parent) or zip."""
    label = f"source={src}"
    if not src.exists():
        raise DataError(f"{label}: not found; point source= at ml-100k.zip or its extracted folder")
    if src.is_file():
        try:
            with zipfile.ZipFile(src) as zf:
                names = zf.namelist()
                udata = next((n for n in names if n.rsplit("/", 1)[-1] == "u.data"), None)
                if udata is None:
                    raise DataError(f"{label}: the zip has no u.data; is it ml-100k.zip?")
                uitem = udata[: -len("u.data")] + "u.item"
                if uitem not in names:
                    raise DataError(f"{label}: the zip has u.data but no u.item next to it")
                data, item_data = zf.read(udata), zf.read(uitem)
        except zipfile.BadZipFile as e:
            raise DataError(f"{label}: not a zip file; point source= at ml-100k.zip or its extracted folder") from e
    else:
        folder = next((d for d in (src, src / "ml-100k") if (d / "u.data").is_file()), None)
        if folder is None:
            raise DataError(f"{label}: no u.data in the folder (nor in ml-100k/ inside it)")
        if not (folder / "u.item").is_file():
            raise DataError(f"{label}: {folder} has u.data but no u.item")
        data, item_data = (folder / "u.data").read_bytes(), (folder / "u.item").read_bytes()
    ratings = _read_udata(data, f"{label} u.data")
    items = _read_uitem(item_data, f"{label} u.item")
    _verify(ratings, items, label)
    return ratings, items


def _resolves(host: str, timeout: float) -> bool:
    """Whether ``host`` resolves within ``timeout`` s (urlopen's timeout does not cover DNS)."""
    import socket
    import threading

    ok: list[bool] = []

    def probe() -> None:
        try:
            socket.getaddrinfo(host, 443)
            ok.append(True)
        except OSError:
            ok.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(ok and ok[0])


def _download_grouplens() -> tuple[pd.DataFrame, pd.DataFrame]:
    host = urllib.parse.urlsplit(ML100K_URL).hostname or ""
    if not _resolves(host, _DOWNLOAD_TIMEOUT_S):
        raise DataError(f"cannot resolve {host} (offline?)")
    try:
        with urllib.request.urlopen(ML100K_URL, timeout=_DOWNLOAD_TIMEOUT_S) as resp:  # noqa: S310 - fixed https URL
            payload = resp.read()
    except Exception as e:  # URLError, timeouts, HTTP errors, resets
        raise DataError(" ".join(str(e).split()) or type(e).__name__) from e
    with tempfile.TemporaryDirectory(prefix="ncf-ml100k-") as tmp:
        z = Path(tmp) / "ml-100k.zip"
        z.write_bytes(payload)
        return _read_grouplens(z)


def _download_recbole() -> tuple[pd.DataFrame, pd.DataFrame]:
    with tempfile.TemporaryDirectory(prefix="ncf-recbole-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--quiet",
            "--timeout",
            "30",
            RECBOLE_SPEC,
            "-d",
            tmp,
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise DataError(f"pip download failed ({e})") from e
        wheels = sorted(Path(tmp).glob("recbole-*.whl"))
        if proc.returncode != 0 or not wheels:
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()
            raise DataError(f"pip download failed (exit {proc.returncode}: {tail[-1] if tail else 'no output'})")
        return _read_recbole_wheel(wheels[0])


def _read_recbole_wheel(wheel: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    label = f"{wheel.name}"
    try:
        with zipfile.ZipFile(wheel) as zf:
            inter = zf.read(_RECBOLE_DIR + "ml-100k.inter")
            item = zf.read(_RECBOLE_DIR + "ml-100k.item")
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        raise DataError(f"{label}: no MovieLens-100k inside ({e})") from e
    try:
        r = pd.read_csv(io.BytesIO(inter), sep="\t", dtype=str, keep_default_na=False)
        it = pd.read_csv(io.BytesIO(item), sep="\t", dtype=str, keep_default_na=False, quoting=3)
    except (pd.errors.ParserError, ValueError) as e:
        raise DataError(f"{label}: cannot parse the MovieLens-100k files ({e})") from e
    r.columns = [c.split(":")[0] for c in r.columns]
    it.columns = [c.split(":")[0] for c in it.columns]
    need_r = {"user_id", "item_id", "rating", "timestamp"}
    need_i = {"item_id", "movie_title", "release_year", "class"}
    if not need_r <= set(r.columns) or not need_i <= set(it.columns):
        raise DataError(f"{label}: unexpected columns {list(r.columns)} / {list(it.columns)}")
    ratings = _int_frame(r.rename(columns={"user_id": "user", "item_id": "item"}), label)
    raw_title = it["movie_title"].str.strip().replace("unkonwn", "unknown")  # recbole's typo for item 267
    year = pd.to_numeric(it["release_year"], errors="coerce").astype("Int64")
    # Where recbole could not split the year off (item 1412: "... (1995)" with year "V"), do it here.
    title_split, year_split = _split_title(raw_title)
    no_year = year.isna()
    items = pd.DataFrame(
        {
            "item": pd.to_numeric(it["item_id"], errors="coerce").astype("int64"),
            "title": raw_title.where(~no_year, title_split),
            "year": year.where(~no_year, year_split),
            "genres": it["class"].str.split().str.join("|"),
        }
    )
    _verify(ratings, items, label)
    return ratings, items


# -- ML-100k: cache --------------------------------------------------------------------
def _sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _read_cache(cache: Path, tried: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, str] | None:
    manifest_path = cache / "manifest.json"
    if not manifest_path.is_file():
        tried.append(f"cache {cache}: no cached copy")
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("format") != _CACHE_FORMAT:  # written by another ncf version: rebuild quietly
            tried.append(f"cache {cache}: format {manifest.get('format')!r}, not {_CACHE_FORMAT}; will be rebuilt")
            return None
        if manifest.get("ratings_sha256") != ML100K_SHA256:
            raise ValueError("the manifest is for other data")
        blobs = {}
        for name in ("ratings.csv", "items.csv"):
            blob = (cache / name).read_bytes()
            if _sha256_bytes(blob) != manifest["files"][name]:
                raise ValueError(f"{name} does not match its checksum")
            blobs[name] = blob
        ratings = pd.read_csv(io.BytesIO(blobs["ratings.csv"]), dtype="int64")
        items = pd.read_csv(
            io.BytesIO(blobs["items.csv"]),
            dtype={"item": "int64", "title": str, "genres": str},
            keep_default_na=False,
            na_values={"year": [""]},
        )
        items["year"] = items["year"].astype("Int64")
        if list(ratings.columns) != _RATING_COLS or list(items.columns) != _ITEM_COLS:
            raise ValueError("unexpected columns")
    except (OSError, ValueError, KeyError, TypeError, pd.errors.ParserError) as e:
        # ValueError covers json.JSONDecodeError and pandas dtype errors.
        tried.append(f"cache {cache}: invalid ({' '.join(str(e).split())}), will be rebuilt")
        warnings.warn(f"ignoring the invalid MovieLens-100k cache {cache}: {e}", RuntimeWarning, stacklevel=4)
        return None
    return ratings, items, str(manifest.get("origin", "cache"))


def _write_cache(cache: Path, ratings: pd.DataFrame, items: pd.DataFrame, origin: str) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    blobs = {
        "ratings.csv": ratings[_RATING_COLS].to_csv(index=False, lineterminator="\n").encode("utf-8"),
        "items.csv": items[_ITEM_COLS].to_csv(index=False, lineterminator="\n").encode("utf-8"),
    }
    for name, blob in blobs.items():
        atomic_write(cache / name, blob)
    manifest: dict[str, Any] = {
        "dataset": "ml-100k",
        "format": _CACHE_FORMAT,
        "ratings_sha256": ML100K_SHA256,
        "rows": ML100K_ROWS,
        "users": ML100K_USERS,
        "items": ML100K_ITEMS,
        "origin": origin,
        "files": {name: _sha256_bytes(blob) for name, blob in blobs.items()},
    }
    # The manifest goes last: a cache without one (or with stale file hashes) is rebuilt.
    atomic_write(cache / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))


def _metadata(items: pd.DataFrame) -> pd.DataFrame:
    meta = items.set_index("item")[["title", "year", "genres"]].copy()
    meta.index = meta.index.astype("int64")
    meta.index.name = "item"
    meta["year"] = meta["year"].astype("Int64")
    meta["title"] = meta["title"].astype(str)
    meta["genres"] = meta["genres"].astype(str)
    return meta.sort_index()
