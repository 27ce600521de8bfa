"""MovieLens loaders: tiny ML-1M/10M/20M-format files, and the real ML-100k (marker `movielens`)."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ncf.data.movielens as ml
from ncf.data.movielens import (
    ML100K_GENRES,
    ML100K_SHA256,
    canonical_sha256,
    fetch_movielens_100k,
    load_movielens,
    movielens_100k,
)
from ncf.errors import DataError

ML1M_RATINGS = "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n2::1::2::978299000\n"
ML1M_MOVIES = "1::Toy Story (1995)::Animation|Children's|Comedy\n661::Misérables, Les (1995)::Drama|Musical\n"
ML1M_MOVIES += "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
ML10M_MOVIES = "1::Toy Story (1995)::Adventure|Animation\n260::Star Wars: Episode IV - A New Hope (1977)::Action\n"
ML20M_RATINGS = "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,3.5,1112484676\n2,2,4.0,974820889\n"
ML20M_MOVIES = 'movieId,title,genres\n2,Jumanji (1995),Adventure|Children\n29,"City of Lost Children, The (Cité des enfants perdus, La) (1995)",Adventure|Drama\n30,No Year Movie,(no genres listed)\n'


def ml1m_folder(root: Path) -> Path:
    d = root / "ml-1m"
    d.mkdir(parents=True)
    (d / "ratings.dat").write_text(ML1M_RATINGS, encoding="ascii")
    (d / "movies.dat").write_bytes(ML1M_MOVIES.encode("latin-1"))  # ML-1M ships latin-1
    return d


def ml20m_folder(root: Path) -> Path:
    d = root / "ml-20m"
    d.mkdir(parents=True)
    (d / "ratings.csv").write_text(ML20M_RATINGS, encoding="utf-8")
    (d / "movies.csv").write_text(ML20M_MOVIES, encoding="utf-8")
    return d


def zip_folder(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f"{folder.name}/{f.name}")
    return target


# -- ML-1M / 10M -----------------------------------------------------------------------
def check_ml1m(d) -> None:
    assert d.user_map.kind == "int" and d.item_map.kind == "int"
    assert d.user_map.ids.tolist() == [1, 2]
    assert d.item_map.ids.tolist() == [1, 661, 1193]
    assert len(d) == 4 and d.report["rows_read"] == 4
    f = d.to_frame().set_index(["user", "item"])
    assert f.loc[(1, 1193), "rating"] == 5.0 and f.loc[(1, 1193), "timestamp"] == 978300760.0
    meta = d.item_metadata
    assert meta.loc[1, "title"] == "Toy Story" and meta.loc[1, "year"] == 1995
    assert meta.loc[1, "genres"] == "Animation|Children's|Comedy"
    assert meta.loc[661, "title"] == "Misérables, Les"
    assert meta.index.name == "item" and meta.index.dtype == np.int64


def test_ml1m_folder(tmp_path):
    check_ml1m(load_movielens(ml1m_folder(tmp_path)))


def test_ml1m_parent_folder(tmp_path):
    ml1m_folder(tmp_path / "downloads")
    check_ml1m(load_movielens(tmp_path / "downloads"))


def test_ml1m_ratings_file(tmp_path):
    d = load_movielens(ml1m_folder(tmp_path) / "ratings.dat")
    check_ml1m(d)
    assert d.report["source"].endswith("ratings.dat")


def test_ml1m_zip(tmp_path):
    z = zip_folder(ml1m_folder(tmp_path / "src"), tmp_path / "ml-1m.zip")
    d = load_movielens(z)
    check_ml1m(d)
    assert "ml-1m.zip" in d.report["source"]


def test_ml10m_utf8_movies_with_colons(tmp_path):
    d = tmp_path / "ml-10M100K"
    d.mkdir()
    (d / "ratings.dat").write_text("1::1::5::838985046\n1::260::4.5::838983525\n", encoding="ascii")
    (d / "movies.dat").write_text(ML10M_MOVIES, encoding="utf-8")
    data = load_movielens(d)
    assert sorted(data.ratings.tolist()) == [4.5, 5.0]
    assert data.item_metadata.loc[260, "title"] == "Star Wars: Episode IV - A New Hope"
    assert data.item_metadata.loc[260, "year"] == 1977


def test_ml1m_min_rating(tmp_path):
    d = load_movielens(ml1m_folder(tmp_path), min_rating=4)
    assert len(d) == 2 and d.report["rows_below_min_rating"] == 2


def test_without_movies_file_metadata_is_none(tmp_path):
    (tmp_path / "ratings.dat").write_text(ML1M_RATINGS, encoding="ascii")
    assert load_movielens(tmp_path / "ratings.dat").item_metadata is None


# -- ML-20M / 25M ----------------------------------------------------------------------
def check_ml20m(d) -> None:
    assert d.user_map.ids.tolist() == [1, 2] and d.item_map.ids.tolist() == [2, 29]
    assert sorted(d.ratings.tolist()) == [3.5, 3.5, 4.0]
    meta = d.item_metadata
    assert meta.loc[29, "title"] == "City of Lost Children, The (Cité des enfants perdus, La)"
    assert meta.loc[29, "year"] == 1995 and meta.loc[2, "genres"] == "Adventure|Children"
    assert meta.loc[30, "title"] == "No Year Movie" and pd.isna(meta.loc[30, "year"])


def test_ml20m_folder(tmp_path):
    check_ml20m(load_movielens(ml20m_folder(tmp_path)))


def test_ml20m_zip(tmp_path):
    check_ml20m(load_movielens(zip_folder(ml20m_folder(tmp_path / "src"), tmp_path / "ml-20m.zip")))


def test_ml20m_min_rating(tmp_path):
    d = load_movielens(ml20m_folder(tmp_path) / "ratings.csv", min_rating=4)
    assert len(d) == 1 and d.report["rows_below_min_rating"] == 2


# -- errors ----------------------------------------------------------------------------
def test_load_movielens_missing_path(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_movielens(tmp_path / "nope.zip")


def test_load_movielens_folder_without_ratings(tmp_path):
    with pytest.raises(DataError, match="no ratings.dat or ratings.csv"):
        load_movielens(tmp_path)


def test_load_movielens_zip_without_ratings(tmp_path):
    z = tmp_path / "x.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ml-1m/README", "hello")
    with pytest.raises(DataError, match="no ratings.dat or ratings.csv"):
        load_movielens(z)


def test_load_movielens_bad_rating_names_row(tmp_path):
    (tmp_path / "ratings.dat").write_text("1::2::5::100\n1::3::five::100\n", encoding="ascii")
    with pytest.raises(DataError, match=r"ratings.dat: rating column 2: rating at row 2 is not a number: 'five'"):
        load_movielens(tmp_path)


# -- ML-100k without the real data -----------------------------------------------------
@pytest.fixture
def no_network(monkeypatch):
    def fail(*_a, **_k):
        raise DataError("unreachable in this test")

    monkeypatch.setattr(ml, "_download_grouplens", fail)
    monkeypatch.setattr(ml, "_download_recbole", fail)
    monkeypatch.delenv("NCF_OFFLINE", raising=False)


def test_ml100k_every_source_fails(tmp_path, no_network):
    with pytest.raises(DataError) as e:
        movielens_100k(data_dir=tmp_path)
    msg = str(e.value)
    assert "\n" not in msg
    assert f"cache {tmp_path / 'ml-100k'}" in msg
    assert "download https://files.grouplens.org" in msg and "recbole==1.2.1" in msg
    assert "source=" in msg and "ml-100k.zip" in msg


def test_ml100k_offline_env_skips_network(tmp_path, monkeypatch):
    def boom(*_a, **_k):
        raise AssertionError("network used although NCF_OFFLINE is set")

    monkeypatch.setattr(ml, "_download_grouplens", boom)
    monkeypatch.setattr(ml, "_download_recbole", boom)
    monkeypatch.setenv("NCF_OFFLINE", "1")
    with pytest.raises(DataError, match="skipped"):
        movielens_100k(data_dir=tmp_path)


def test_ml100k_data_dir_from_env(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("NCF_DATA_DIR", str(tmp_path / "envdir"))
    with pytest.raises(DataError, match="envdir"):
        movielens_100k()


def test_ml100k_source_that_is_not_ml100k(tmp_path, no_network):
    src = tmp_path / "ml-100k"
    src.mkdir()
    (src / "u.data").write_text("1\t2\t3\t881250949\n", encoding="ascii")
    (src / "u.item").write_bytes(b"2|Foo (1995)|01-Jan-1995||http://x|" + b"|".join([b"0"] * 19) + b"\n")
    with pytest.raises(DataError, match=r"not MovieLens-100k: 1 ratings"):
        movielens_100k(data_dir=tmp_path / "cache", source=src)
    assert not (tmp_path / "cache" / "ml-100k" / "manifest.json").exists()


def test_ml100k_source_missing(tmp_path, no_network):
    with pytest.raises(DataError, match="not found"):
        movielens_100k(data_dir=tmp_path, source=tmp_path / "nothing.zip")


def test_ml100k_source_folder_without_udata(tmp_path, no_network):
    with pytest.raises(DataError, match="no u.data"):
        movielens_100k(data_dir=tmp_path / "c", source=tmp_path)


# -- the real ML-100k ------------------------------------------------------------------
def write_grouplens(cache: Path, dest: Path) -> Path:
    """Rebuild u.data and u.item (GroupLens layout) from a verified cache folder."""
    ratings = pd.read_csv(cache / "ratings.csv")
    items = pd.read_csv(cache / "items.csv", keep_default_na=False, na_values={"year": [""]})
    dest.mkdir(parents=True)
    ratings.to_csv(dest / "u.data", sep="\t", header=False, index=False, lineterminator="\n")
    lines = []
    for row in items.itertuples(index=False):
        has_year = not pd.isna(row.year)
        title = f"{row.title} ({int(row.year)})" if has_year else row.title
        date = f"01-Jan-{int(row.year)}" if has_year else ""
        genres = set(row.genres.split("|"))
        flags = "|".join("1" if g in genres else "0" for g in ML100K_GENRES)
        lines.append(f"{row.item}|{title}|{date}||http://example.org/{row.item}|{flags}\n")
    (dest / "u.item").write_bytes("".join(lines).encode("latin-1"))
    return dest


@pytest.fixture(scope="module")
def ml100k_cache(ml100k) -> Path:
    return fetch_movielens_100k()  # already cached by the ml100k fixture: no network


@pytest.fixture(scope="module")
def grouplens_src(ml100k_cache, tmp_path_factory) -> Path:
    """A GroupLens-layout ml-100k folder (u.data + u.item) rebuilt from the cache; treat as read-only."""
    return write_grouplens(ml100k_cache, tmp_path_factory.mktemp("grouplens") / "ml-100k")


@pytest.mark.movielens
def test_ml100k_shape_and_checksum(ml100k, ml100k_cache):
    assert (ml100k.n_users, ml100k.n_items, len(ml100k)) == (943, 1682, 100_000)
    assert ml100k.user_map.kind == "int" and ml100k.item_map.kind == "int"
    assert ml100k.report["sha256"] == ML100K_SHA256
    assert ml100k.report["rows_read"] == 100_000 and ml100k.report["duplicates_merged"] == 0
    ratings = pd.read_csv(ml100k_cache / "ratings.csv")
    assert list(ratings.columns) == ["user", "item", "rating", "timestamp"]
    assert canonical_sha256(ratings) == ML100K_SHA256
    assert ratings.iloc[0].tolist() == [196, 242, 3, 881250949]  # u.data order
    manifest = json.loads((ml100k_cache / "manifest.json").read_text())
    assert manifest["ratings_sha256"] == ML100K_SHA256
    assert sorted(p.name for p in ml100k_cache.iterdir()) == ["items.csv", "manifest.json", "ratings.csv"]
    assert np.bincount(ml100k.ratings.astype(int)).tolist() == [0, 6110, 11370, 27145, 34174, 21201]


@pytest.mark.movielens
def test_ml100k_metadata(ml100k):
    meta = ml100k.item_metadata
    assert len(meta) == 1682 and list(meta.columns) == ["title", "year", "genres"]
    assert meta.loc[1, "title"] == "Toy Story"
    assert meta.loc[1, "year"] == 1995
    assert meta.loc[1, "genres"] == "Animation|Children's|Comedy"
    assert meta.loc[267, "title"] == "unknown" and pd.isna(meta.loc[267, "year"])
    assert set(ml100k.item_map.ids.tolist()) == set(meta.index.tolist())


@pytest.mark.movielens
def test_ml100k_min_rating(ml100k, ml100k_cache):
    liked = movielens_100k(min_rating=4)
    assert len(liked) == 34174 + 21201
    assert liked.report["rows_below_min_rating"] == 100_000 - len(liked)


@pytest.mark.movielens
@pytest.mark.parametrize("as_zip", [False, True])
def test_ml100k_grouplens_source_verifies_identically(
    ml100k, ml100k_cache, grouplens_src, tmp_path, monkeypatch, as_zip
):
    folder = grouplens_src
    source: Path = folder
    if as_zip:
        source = zip_folder(folder, tmp_path / "ml-100k.zip")
    cache_root = tmp_path / "cache"
    d = movielens_100k(data_dir=cache_root, source=source)
    assert d.fingerprint() == ml100k.fingerprint()
    assert np.array_equal(d.ratings, ml100k.ratings) and np.array_equal(d.timestamps, ml100k.timestamps)
    pd.testing.assert_frame_equal(d.item_metadata, ml100k.item_metadata)
    assert d.report["origin"] == f"source {source}"
    # Cached in canonical form, byte-identical to the other cache, no temp files left.
    assert (cache_root / "ml-100k" / "ratings.csv").read_bytes() == (ml100k_cache / "ratings.csv").read_bytes()
    assert sorted(p.name for p in (cache_root / "ml-100k").iterdir()) == ["items.csv", "manifest.json", "ratings.csv"]

    # The second call is served from the cache: the source is not read again.
    def boom(*_a, **_k):
        raise AssertionError("source read although the cache is valid")

    monkeypatch.setattr(ml, "_read_grouplens", boom)
    again = movielens_100k(data_dir=cache_root, source=source)
    assert again.fingerprint() == ml100k.fingerprint()
    assert again.report["source"] == str(cache_root / "ml-100k" / "ratings.csv")


@pytest.mark.movielens
def test_ml100k_fetch_returns_cache_folder(grouplens_src, tmp_path, no_network):
    folder = grouplens_src
    out = fetch_movielens_100k(tmp_path / "c", source=folder)
    assert out == tmp_path / "c" / "ml-100k"
    assert (out / "manifest.json").is_file()


@pytest.mark.movielens
def test_ml100k_corrupt_cache_is_detected(grouplens_src, tmp_path, no_network):
    folder = grouplens_src
    root = tmp_path / "c"
    fetch_movielens_100k(root, source=folder)
    ratings = root / "ml-100k" / "ratings.csv"
    ratings.write_bytes(ratings.read_bytes().replace(b"196,242,3,", b"196,242,4,", 1))
    with pytest.warns(RuntimeWarning, match="invalid"), pytest.raises(DataError, match="does not match its checksum"):
        movielens_100k(data_dir=root)
    with pytest.warns(RuntimeWarning, match="invalid"):
        d = movielens_100k(data_dir=root, source=folder)  # rebuilt from the source
    assert d.report["sha256"] == ML100K_SHA256
    assert canonical_sha256(pd.read_csv(ratings)) == ML100K_SHA256


@pytest.mark.movielens
def test_ml100k_tampered_source_fails_checksum(grouplens_src, tmp_path, no_network):
    folder = Path(shutil.copytree(grouplens_src, tmp_path / "ml-100k"))
    udata = folder / "u.data"
    udata.write_bytes(udata.read_bytes().replace(b"196\t242\t3\t", b"196\t242\t5\t", 1))
    with pytest.raises(DataError, match="checksum"):
        movielens_100k(data_dir=tmp_path / "c", source=folder)


@pytest.mark.movielens
def test_ml100k_recbole_wheel_format(ml100k, ml100k_cache, tmp_path):
    """The recbole wheel's atomic files parse to the same data (built here from the cache)."""
    ratings = pd.read_csv(ml100k_cache / "ratings.csv")
    items = pd.read_csv(ml100k_cache / "items.csv", keep_default_na=False, na_values={"year": [""]})
    inter = ratings.rename(
        columns={
            "user": "user_id:token",
            "item": "item_id:token",
            "rating": "rating:float",
            "timestamp": "timestamp:float",
        }
    ).to_csv(sep="\t", index=False, lineterminator="\n")
    item = pd.DataFrame(
        {
            "item_id:token": items["item"],
            "movie_title:token_seq": items["title"].replace("unknown", "unkonwn"),
            "release_year:token": items["year"].astype("string").fillna("unkonwn"),
            "class:token_seq": items["genres"].str.replace("|", " "),
        }
    ).to_csv(sep="\t", index=False, lineterminator="\n")
    wheel = tmp_path / "recbole-1.2.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("recbole/dataset_example/ml-100k/ml-100k.inter", inter)
        zf.writestr("recbole/dataset_example/ml-100k/ml-100k.item", item)
    r, it = ml._read_recbole_wheel(wheel)
    assert canonical_sha256(r) == ML100K_SHA256
    pd.testing.assert_frame_equal(ml._metadata(it), ml100k.item_metadata)


@pytest.mark.movielens
def test_ml100k_grouplens_download_path(ml100k, grouplens_src, tmp_path, monkeypatch):
    """The download step (network faked) unpacks the GroupLens zip, verifies and caches it."""
    payload = zip_folder(grouplens_src, tmp_path / "ml-100k.zip").read_bytes()

    class FakeResponse(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    seen = {}

    def fake_urlopen(url, timeout):
        seen.update(url=url, timeout=timeout)
        return FakeResponse(payload)

    monkeypatch.setattr(ml, "_resolves", lambda host, timeout: True)
    monkeypatch.setattr(ml.urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setattr(ml, "_download_recbole", lambda: pytest.fail("recbole tried after a good download"))
    monkeypatch.delenv("NCF_OFFLINE", raising=False)
    d = movielens_100k(data_dir=tmp_path / "c")
    assert seen == {"url": ml.ML100K_URL, "timeout": ml._DOWNLOAD_TIMEOUT_S}
    assert d.fingerprint() == ml100k.fingerprint()
    assert d.report["origin"] == f"download {ml.ML100K_URL}"
