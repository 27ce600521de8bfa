"""Incremental update (ncf.update, model.update, `ncf update`): new users and items on the checkerboard."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from checkerboard import BASELINE_SPECS, FULL, GROUPS, IPG, ITEM0, NCF_SPECS, UPG, USER0
from cli_helpers import assert_clean_error, run
from ncf import NCF, ConfigError, DataError, IdMap, Interactions, load_interactions
from ncf.baselines import EASE, Popularity, make_baseline
from ncf.loading import load_model
from ncf.persist import load_bundle
from ncf.train.sources import make_source
from ncf.update import merge, update_history

NEW_USER0, NEW_ITEM0 = 5000, 3000


def new_rows() -> pd.DataFrame:
    """One new user per group with 4 of its 5 items plus the group's new item; the group's first
    5 old users take the new item too. So after the update, with seen items filtered:
    a new user's top item is the group item it lacks, and the other 5 old users' top item is
    their group's new item."""
    rows = []
    for g in range(GROUPS):
        rows += [(NEW_USER0 + g, ITEM0 + g * IPG + j) for j in range(IPG - 1)]
        rows += [(NEW_USER0 + g, NEW_ITEM0 + g)]
        rows += [(USER0 + g * UPG + j, NEW_ITEM0 + g) for j in range(5)]
    return pd.DataFrame(rows, columns=["user", "item"])


NEW = load_interactions(new_rows(), user="user", item="item")


def check_top1(model) -> None:
    new_users = [NEW_USER0 + g for g in range(GROUPS)]
    ids, _ = model.recommend(new_users, k=1)
    assert ids[:, 0].tolist() == [ITEM0 + g * IPG + IPG - 1 for g in range(GROUPS)]
    old_users = [USER0 + g * UPG + j for g in range(GROUPS) for j in range(5, UPG)]
    ids, _ = model.recommend(old_users, k=1)
    assert ids[:, 0].tolist() == [NEW_ITEM0 + u // UPG for u in range(0, GROUPS * UPG) if u % UPG >= 5]


# -- the data side ------------------------------------------------------------------------------
def test_idmap_extend_appends_new_ids_and_keeps_old_indices():
    m = IdMap([30, 10, 20], name="user")
    e = m.extend([20, 40, 5, 40])
    assert e.ids.tolist() == [30, 10, 20, 5, 40] and m.ids.tolist() == [30, 10, 20]
    assert m.extend([10, 30]) is m
    with pytest.raises(DataError, match="strings but this map holds integers"):
        m.extend(["a"])


def test_merge_collapses_duplicates_latest_wins_and_marks_new_rows():
    old = load_interactions(
        pd.DataFrame({"u": [1, 1, 2], "i": [7, 8, 7], "t": [1.0, 2.0, 3.0]}), user="u", item="i", timestamp="t"
    )
    new = load_interactions(
        pd.DataFrame({"u": [1, 3, 3], "i": [8, 9, 7], "t": [5.0, 6.0, 7.0]}), user="u", item="i", timestamp="t"
    )
    m = merge(old, new, uses_recency=True)
    d = m.data
    assert d.user_map.ids.tolist() == [1, 2, 3] and d.item_map.ids.tolist() == [7, 8, 9]
    assert (m.new_users, m.new_items, len(d)) == (1, 1, 5)  # (1, 8) twice: one row, the later one
    f = d.to_frame().assign(new=m.is_new)
    assert f.loc[(f.user == 1) & (f.item == 8), ["timestamp", "new"]].values.tolist() == [[5.0, True]]
    assert f.new.sum() == 3 and not f.loc[f.user == 2, "new"].any()


def test_merge_refuses_other_id_types_and_one_sided_timestamps_under_recency():
    old = FULL
    str_users = load_interactions(pd.DataFrame({"u": ["a"], "i": [ITEM0]}), user="u", item="i")
    with pytest.raises(DataError, match="user ids are strings but the model's are integers"):
        merge(old, str_users, uses_recency=False)
    timed = load_interactions(pd.DataFrame({"u": [1], "i": [ITEM0], "t": [1.0]}), user="u", item="i", timestamp="t")
    with pytest.raises(DataError, match="recency but the model's training data had no timestamps"):
        merge(old, timed, uses_recency=True)
    assert merge(old, timed, uses_recency=False).timestamps_dropped


def test_sources_never_draw_excluded_positives_as_negatives():
    sample = FULL._subset(np.arange(len(FULL)) % 5 == 0)  # one item per user
    src = make_source(sample, 20, "bce", torch.device("cpu"), exclude=FULL)
    ep = src.epoch(torch.Generator().manual_seed(0))
    neg = ep.target == 0
    drawn = FULL.csr[ep.u[neg].numpy().copy(), ep.i[neg].numpy().copy()]
    assert neg.sum() > 0 and not np.asarray(drawn).any()


# -- every model --------------------------------------------------------------------------------
def _baseline(name: str):
    params, needs = BASELINE_SPECS[name]
    if needs is not None and importlib.util.find_spec(needs) is None:
        pytest.skip(f"{needs} is not installed")
    return make_baseline(name, **params)


@pytest.mark.parametrize("name", ["gmf", "neumf"])
def test_ncf_update_new_users_and_items(name):
    model = NCF(**NCF_SPECS[name]).fit(FULL, validation=None)
    assert model.update(NEW, epochs=10, old_ratio=2.0) is model  # settings for this tiny data, not the defaults
    assert model.train_.shape == (FULL.n_users + GROUPS, FULL.n_items + GROUPS)
    check_top1(model)
    # nothing forgotten: among the old items, every old user still ranks their own group's 5 first
    old_items, users = FULL.item_map.ids, FULL.user_map.ids
    ids, _ = model.recommend(users, k=IPG, filter_seen=False, items=old_items)
    assert [sorted(r) for r in ids.tolist()] == [
        [ITEM0 + (u - USER0) // UPG * IPG + j for j in range(IPG)] for u in users
    ]


@pytest.mark.parametrize("name", [n for n in BASELINE_SPECS if n != "popularity"])
def test_baseline_update_new_users_and_items(name):
    model = _baseline(name).fit(FULL)
    assert model.update(NEW) is model
    check_top1(model)


def test_popularity_update_counts_the_new_interactions():
    model = Popularity().fit(FULL).update(NEW)
    assert model.scores_[model.item_map_.index(NEW_ITEM0)] == 6  # 5 old users and one new one


# -- records, bundles, errors -------------------------------------------------------------------
def test_update_is_recorded_in_the_bundle_and_chains(tmp_path):
    model = EASE(l2=10.0).fit(FULL)
    base_fp = model.train_.fingerprint()
    model.update(NEW)
    model.save(tmp_path / "a")
    b = load_bundle(tmp_path / "a")  # the metadata schema accepts the record
    (rec,) = b.extra["updates"]
    assert rec["base_fingerprint"] == base_fp and rec["update_fingerprint"] == NEW.fingerprint()
    assert rec["data_fingerprint"] == b.extra["data_fingerprint"] == model.train_.fingerprint()
    assert (rec["new_users"], rec["new_items"]) == (GROUPS, GROUPS)
    more = load_interactions(pd.DataFrame({"user": [9999], "item": [ITEM0]}), user="user", item="item")
    loaded = load_model(tmp_path / "a").update(more)
    assert [r["base_fingerprint"] for r in update_history(loaded)] == [base_fp, rec["data_fingerprint"]]
    assert update_history(loaded.fit(FULL)) == []  # a refit on other data forgets the records


def test_failed_update_leaves_the_model_unchanged():
    model = EASE(l2=10.0).fit(FULL)
    train, b = model.train_, model.B_.copy()
    bad = load_interactions(pd.DataFrame({"u": ["x"], "i": ["y"]}), user="u", item="i")
    with pytest.raises(DataError, match="ids are strings"):
        model.update(bad)
    assert model.train_ is train and np.array_equal(model.B_, b) and not hasattr(model, "updates_")
    with pytest.raises(ConfigError, match="epochs == 0"):
        NCF(**NCF_SPECS["gmf"]).fit(FULL, validation=None).update(NEW, epochs=0)


# -- the CLI and the service --------------------------------------------------------------------
def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _timed_full() -> Interactions:
    return dataclasses.replace(FULL, timestamps=np.arange(len(FULL), dtype=np.float64))


def test_cli_update_writes_a_new_bundle_and_serve_reloads_it(tmp_path, capsys):
    from fastapi.testclient import TestClient

    from ncf.serve.app import create_app

    NCF(**NCF_SPECS["gmf"]).fit(FULL, validation=None).save(tmp_path / "m")
    before = _hashes(tmp_path / "m")
    new_rows().to_csv(tmp_path / "new.csv", index=False)
    rc, out, err = run(capsys, "update", tmp_path / "m", "--data", tmp_path / "new.csv", "--out", tmp_path / "m2")
    assert rc == 0, err
    assert "6 new users, 6 new items" in out and "saved to" in out
    assert _hashes(tmp_path / "m") == before  # the old bundle is never modified
    updated = load_model(tmp_path / "m2")
    assert updated.recommend(NEW_USER0, k=3)[0][0] is not None
    app = create_app(tmp_path / "m", api_key="k")
    with TestClient(app) as c:
        auth = {"Authorization": "Bearer k"}
        assert c.get(f"/v1/users/{NEW_USER0}/recommendations", headers=auth).status_code == 404
        r = c.post("/v1/admin/reload", headers=auth, json={"path": str(tmp_path / "m2")})
        assert r.status_code == 200, r.text
        got = c.get(f"/v1/users/{NEW_USER0}/recommendations?k=3", headers=auth)
        assert got.status_code == 200 and len(got.json()["items"]) == 3


def test_cli_update_refuses_other_id_types_and_missing_timestamps(tmp_path, capsys):
    EASE(l2=10.0).fit(_timed_full()).save(tmp_path / "m")  # timestamps: recency="auto" is on
    pd.DataFrame({"user": ["a", "b"], "item": [ITEM0, ITEM0], "timestamp": [1, 2]}).to_csv(tmp_path / "s.csv")
    rc, _, err = run(capsys, "update", tmp_path / "m", "--data", tmp_path / "s.csv", "--out", tmp_path / "o")
    assert_clean_error(rc, err, "user ids are strings", "model's are integers")
    new_rows().to_csv(tmp_path / "n.csv", index=False)  # no timestamp column
    rc, _, err = run(capsys, "update", tmp_path / "m", "--data", tmp_path / "n.csv", "--out", tmp_path / "o")
    assert_clean_error(rc, err, "recency", "no timestamps", "--timestamp-col")
    assert not (tmp_path / "o").exists()


def test_cli_update_checks_out_before_any_work(tmp_path, capsys):
    missing = tmp_path / "no-such.csv"  # reading it would fail: the --out error must come first
    for out in (tmp_path / "m", tmp_path / "m" / "model.safetensors"):
        rc, _, err = run(capsys, "update", tmp_path / "m", "--data", missing, "--out", out)
        assert_clean_error(rc, err, "--out", "the bundle being updated")
    (tmp_path / "file").write_text("x")
    rc, _, err = run(capsys, "update", tmp_path / "m", "--data", missing, "--out", tmp_path / "file" / "o")
    assert_clean_error(rc, err, "--out", "is a file")
