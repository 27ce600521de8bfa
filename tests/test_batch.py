"""write_recommendations: CSV/Parquet output equals recommend(), chunking, atomic writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ncf import NCF, ConfigError, UnknownIdError, load_interactions
from ncf.baselines import Popularity
from ncf.batch import write_recommendations

N_ITEMS = 8


@pytest.fixture(scope="module")
def data():
    """7 users with unicode/str ids over 8 int items; "heavy" has seen 6 of them."""
    users = ["ana", "björn", "日本", "🎬", "o'brien, jr", "u5", "heavy"]
    rows = [(u, 100 + (j * 3 + k) % N_ITEMS) for j, u in enumerate(users[:-1]) for k in range(2)]
    rows += [("heavy", 100 + k) for k in range(6)]
    df = pd.DataFrame(rows, columns=["u", "i"])
    return load_interactions(df, user="u", item="i")


@pytest.fixture(scope="module")
def model(data):
    return NCF(factors=4, layers=(8, 4), epochs=2, batch_size=64, seed=0, device="cpu").fit(data, validation=None)


def expected(model, users, k, filter_seen=True) -> pd.DataFrame:
    ids, scores = model.recommend(list(users), k=k, filter_seen=filter_seen)
    rows = [
        (u, i, r, s)
        for u, row_i, row_s in zip(users, ids, scores)
        for r, (i, s) in enumerate(zip(row_i, row_s), 1)
        if i is not None
    ]
    df = pd.DataFrame(rows, columns=["user", "item", "rank", "score"])
    return df.astype({"item": np.int64, "rank": np.int64, "score": np.float32})


def read(path) -> pd.DataFrame:
    if path.suffix == ".csv":
        df = pd.read_csv(path, dtype={"user": str}, keep_default_na=False)
    else:
        df = pd.read_parquet(path)
    return df.astype({"user": object, "item": np.int64, "rank": np.int64, "score": np.float32})


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == ["user", "item", "rank", "score"]
    assert got["user"].tolist() == want["user"].tolist()
    np.testing.assert_array_equal(got["item"].to_numpy(), want["item"].to_numpy())
    np.testing.assert_array_equal(got["rank"].to_numpy(), want["rank"].to_numpy())
    np.testing.assert_array_equal(got["score"].to_numpy(), want["score"].to_numpy())  # float32 round-trips


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".pq"])
def test_all_users_equal_recommend(model, tmp_path, suffix):
    out = tmp_path / f"recs{suffix}"
    n = write_recommendations(model, out, k=3)
    want = expected(model, model.user_map_.ids, 3)
    assert n == len(want)
    assert_same(read(out), want)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # temp file renamed away


def test_csv_header_once_and_raw_ids(model, tmp_path):
    out = tmp_path / "r.csv"
    write_recommendations(model, out, k=2, chunk_users=2)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "user,item,rank,score"
    assert sum(line.startswith("user,") for line in lines) == 1
    assert any(line.startswith("🎬,") for line in lines)
    assert any(line.startswith('"o\'brien, jr",') for line in lines)  # quoted, not split


def test_parquet_types(model, data, tmp_path):
    out = tmp_path / "r.parquet"
    write_recommendations(model, out, k=2)
    schema = pq.read_schema(out)
    assert [str(schema.field(c).type) for c in ("user", "item", "rank", "score")] == [
        "string",
        "int64",
        "int32",
        "float",
    ]
    int_users = NCF(factors=2, layers=(4,), epochs=1, seed=0, device="cpu").fit(
        load_interactions(pd.DataFrame({"u": [1, 2, 3], "i": ["a", "b", "c"]}), user="u", item="i"), validation=None
    )
    write_recommendations(int_users, out, k=2)
    schema = pq.read_schema(out)
    assert (str(schema.field("user").type), str(schema.field("item").type)) == ("int64", "string")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_chunking_gives_identical_output(model, data, tmp_path, suffix):
    # Popularity scores do not depend on how users are batched: byte-identical files.
    pop = Popularity().fit(data)
    one, many = tmp_path / f"one{suffix}", tmp_path / f"many{suffix}"
    n1 = write_recommendations(pop, one, k=4, chunk_users=10_000)
    n2 = write_recommendations(pop, many, k=4, chunk_users=2)
    assert n1 == n2
    if suffix == ".csv":
        assert one.read_bytes() == many.read_bytes()
    else:
        assert pq.read_table(one).equals(pq.read_table(many))
        n_users = len(pop.user_map_)
        assert pq.ParquetFile(many).metadata.num_row_groups == -(-n_users // 2)  # one per chunk
        assert pq.ParquetFile(one).metadata.num_row_groups == 1
    # NCF: torch's matmul may differ in the last bit with the batch shape, so scores are
    # compared to float32 precision; the rows themselves are identical.
    n1 = write_recommendations(model, one, k=4, chunk_users=10_000)
    n2 = write_recommendations(model, many, k=4, chunk_users=2)
    a, b = read(one), read(many)
    assert n1 == n2 == len(a) == len(b)
    assert a[["user", "item", "rank"]].equals(b[["user", "item", "rank"]])
    np.testing.assert_allclose(a["score"], b["score"], rtol=1e-5, atol=1e-7)


def test_bad_suffix(model, tmp_path):
    for name in ("recs.txt", "recs", "recs.json"):
        with pytest.raises(ConfigError, match=r"\.csv, \.parquet, \.pq"):
            write_recommendations(model, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_subset_of_users_in_given_order(model, tmp_path):
    out = tmp_path / "s.csv"
    users = ["日本", "ana", "heavy"]
    n = write_recommendations(model, out, users=users, k=3)
    got = read(out)
    assert got["user"].drop_duplicates().tolist() == users
    assert_same(got, expected(model, users, 3))
    assert n == len(got)


def test_unknown_user_fails_before_writing(model, tmp_path):
    out = tmp_path / "s.csv"
    out.write_text("previous\n")
    with pytest.raises(UnknownIdError, match="nobody"):
        write_recommendations(model, out, users=["ana", "nobody"])
    assert out.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["s.csv"]


def test_users_with_fewer_than_k_rankable_items(model, tmp_path):
    out = tmp_path / "f.parquet"
    n = write_recommendations(model, out, users=["heavy", "ana"], k=N_ITEMS)
    got = read(out)
    heavy = got[got["user"] == "heavy"]
    assert heavy["rank"].tolist() == [1, 2]  # 8 items, 6 seen: only 2 rows, no padding rows
    assert set(heavy["item"]) == {106, 107}
    assert (got["user"] == "ana").sum() == N_ITEMS - 2
    assert np.isfinite(got["score"]).all()
    assert n == len(got) == 2 + N_ITEMS - 2
    # without filtering seen items every user gets all k
    n_all = write_recommendations(model, tmp_path / "g.csv", users=["heavy"], k=N_ITEMS, filter_seen=False)
    assert n_all == N_ITEMS


def test_k_larger_than_catalogue_and_bad_k(model, tmp_path):
    n = write_recommendations(model, tmp_path / "a.csv", users=["ana"], k=50)
    assert n == N_ITEMS - 2
    for bad in (0, -1, 2.5):
        with pytest.raises(ConfigError, match="k =="):
            write_recommendations(model, tmp_path / "b.csv", k=bad)
    with pytest.raises(ConfigError, match="chunk_users"):
        write_recommendations(model, tmp_path / "b.csv", chunk_users=0)


def test_no_users_writes_header_only(model, tmp_path):
    assert write_recommendations(model, tmp_path / "e.csv", users=[]) == 0
    assert (tmp_path / "e.csv").read_text() == "user,item,rank,score\n"
    assert write_recommendations(model, tmp_path / "e.parquet", users=[]) == 0
    assert pq.read_table(tmp_path / "e.parquet").num_rows == 0


def test_crash_mid_write_keeps_previous_file(model, tmp_path, monkeypatch):
    out = tmp_path / "r.csv"
    write_recommendations(model, out, k=2)
    before = out.read_bytes()
    calls = {"n": 0}
    real = NCF.recommend

    def flaky(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom")
        return real(self, *a, **kw)

    monkeypatch.setattr(NCF, "recommend", flaky)
    with pytest.raises(RuntimeError, match="boom"):
        write_recommendations(model, out, k=5, chunk_users=2)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.csv"]  # temp file removed


def test_works_with_a_baseline(data, tmp_path):
    pop = Popularity().fit(data)
    n = write_recommendations(pop, tmp_path / "p.csv", k=3, chunk_users=3)
    assert_same(read(tmp_path / "p.csv"), expected(pop, pop.user_map_.ids, 3))
    assert n == 3 * len(pop.user_map_) - 1  # heavy has only 2 unseen items
