"""Model bundles: round trips, atomic saves under SIGKILL, and refusal of bad files."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import pickle
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from cli_helpers import rewrite
from ncf import NCF, BundleError, load_interactions
from ncf.loading import LOADERS, bundle_model_class, load_model
from ncf.persist import FILENAME, FORMAT_VERSION, bundle_file, load_bundle

TINY = dict(factors=4, layers=(8, 4), epochs=1, batch_size=256, device="cpu")


def _int_data():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"u": rng.integers(0, 25, 250), "i": rng.integers(100, 140, 250), "t": np.arange(250.0)})
    return load_interactions(df, user="u", item="i", timestamp="t")


def _str_data():
    users = ["ana", "björn", "日本", "🎬-fan", "007", "o'brien, jr"]
    items = ["x1", "ü-item", "项目", "🍿", "007", "a,b", "plain"]
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"u": rng.choice(users, 60), "i": rng.choice(items, 60)})
    df = pd.concat([df, pd.DataFrame({"u": users, "i": items[: len(users)]})], ignore_index=True)
    data = load_interactions(df, user="u", item="i")
    md = pd.DataFrame(
        {"title": [f"título {k} — ☃" for k in range(len(items))], "year": np.arange(1990, 1990 + len(items))},
        index=pd.Index(sorted(items), name="item"),
    )
    return dataclasses.replace(data, item_metadata=md)


@pytest.fixture(scope="module")
def int_model():
    return NCF(seed=0, **TINY).fit(_int_data(), validation=None)


@pytest.fixture(scope="module")
def str_model():
    return NCF(model="gmf", seed=1, **TINY).fit(_str_data(), validation=None)


@pytest.fixture
def saved(int_model, tmp_path):
    int_model.save(tmp_path / "m")
    return tmp_path / "m"


def all_scores(model) -> tuple[np.ndarray, np.ndarray]:
    """Every (user, item) score and the top-5 ids, as a fingerprint of the model's behaviour."""
    users = np.repeat(model.user_map_.ids, model.train_.n_items)
    items = np.tile(model.item_map_.ids, model.train_.n_users)
    ids, _ = model.recommend(model.user_map_.ids, k=5)
    return model.score(users, items), ids


# -- round trips -------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["int_model", "str_model"])
def test_round_trip(which, request, tmp_path):
    model = request.getfixturevalue(which)
    written = model.save(tmp_path / "bundle")
    assert written == tmp_path / "bundle" / FILENAME
    loaded = NCF.load(tmp_path / "bundle")

    assert loaded.get_params() == model.get_params()
    assert loaded.user_map_ == model.user_map_ and loaded.item_map_ == model.item_map_
    assert loaded.user_map_.kind == model.user_map_.kind
    assert list(loaded.user_map_.ids) == list(model.user_map_.ids)
    assert list(loaded.item_map_.ids) == list(model.item_map_.ids)
    tr, tr0 = loaded.train_, model.train_
    np.testing.assert_array_equal(tr.user_idx, tr0.user_idx)
    np.testing.assert_array_equal(tr.item_idx, tr0.item_idx)
    if tr0.timestamps is None:
        assert tr.timestamps is None
    else:
        np.testing.assert_array_equal(tr.timestamps, tr0.timestamps)
    assert loaded.seed_ == model.seed_ and loaded.best_epoch_ == model.best_epoch_

    s0, ids0 = all_scores(model)
    s1, ids1 = all_scores(loaded)
    np.testing.assert_array_equal(s1, s0)  # bit-identical
    np.testing.assert_array_equal(ids1, ids0)


def test_round_trip_unicode_ids_and_item_metadata(str_model, tmp_path):
    str_model.save(tmp_path / "b")
    loaded = load_model(tmp_path / "b")
    assert isinstance(loaded, NCF)
    assert loaded.user_map_.kind == "str" and "🎬-fan" in set(loaded.user_map_.ids)
    assert "007" in set(loaded.item_map_.ids)  # leading zero kept: stays a string
    md0, md1 = str_model.train_.item_metadata, loaded.train_.item_metadata
    assert md1 is not None
    pd.testing.assert_frame_equal(md1, md0, check_dtype=False, check_names=False)
    assert md1.loc["项目", "title"] == md0.loc["项目", "title"]
    ids, _ = loaded.recommend("日本", k=3)
    np.testing.assert_array_equal(ids, str_model.recommend("日本", k=3)[0])


def test_save_over_existing_bundle_replaces_it(tmp_path):
    data = _int_data()
    a = NCF(seed=0, **TINY).fit(data, validation=None)
    b = NCF(seed=7, **{**TINY, "factors": 6}).fit(data, validation=None)
    a.save(tmp_path)
    b.save(tmp_path)
    loaded = NCF.load(tmp_path)
    assert loaded.factors == 6
    np.testing.assert_array_equal(all_scores(loaded)[0], all_scores(b)[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILENAME]  # no temp files left


def test_save_to_explicit_safetensors_path(int_model, tmp_path):
    f = int_model.save(tmp_path / "custom.safetensors")
    assert f == tmp_path / "custom.safetensors" and f.exists()
    np.testing.assert_array_equal(all_scores(NCF.load(f))[0], all_scores(int_model)[0])


def test_load_model_dispatches_on_model_class(saved):
    assert bundle_model_class(saved) == "NCF"
    assert type(load_model(saved)) is NCF


def test_load_model_unknown_class(saved):
    rewrite(saved, meta=lambda md: md.update(model_class="FancyNet"))
    with pytest.raises(BundleError, match="FancyNet") as e:
        load_model(saved)
    assert "known classes" in str(e.value) and all(name in str(e.value) for name in LOADERS)
    with pytest.raises(BundleError, match="FancyNet.*cannot load"):  # refused by the metadata schema (issue 16)
        NCF.load(saved)
    rewrite(saved, meta=lambda md: md.update(model_class="Popularity"))
    with pytest.raises(BundleError, match="Popularity model, not NCF"):
        NCF.load(saved)


# -- atomicity under SIGKILL ---------------------------------------------------------------
# One helper process imports ncf once, then per round forks a child that saves, over the
# bundle, a shifted copy of it and the original in turn; the test SIGKILLs the child
# mid-loop. Forking keeps the three rounds to one interpreter start-up.
SAVER = textwrap.dedent(
    """
    import os, sys, torch
    torch.set_num_threads(1)
    from ncf import NCF
    print("imported", flush=True)
    for line in sys.stdin:
        d = line.strip()
        old, new = NCF.load(d), NCF.load(d)
        with torch.no_grad():
            for v in new.module_.state_dict().values():
                v.add_(0.5)
        pid = os.fork()
        if pid == 0:
            try:
                new.save(d)
                os.write(1, b"saved\\n")
                while True:  # alternate, so the bundle is old or new depending on where the kill lands
                    old.save(d)
                    new.save(d)
            finally:
                os._exit(1)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)
    """
)


@pytest.fixture(scope="module")
def big_model():
    """A few MB of weights, so one save takes a while and a kill can land inside it."""
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"u": np.arange(1500), "i": rng.integers(0, 5000, 1500)})
    data = load_interactions(df, user="u", item="i")
    return NCF(model="gmf", factors=256, negatives=1, epochs=1, batch_size=4096, seed=0, device="cpu").fit(
        data, validation=None
    )


def _fingerprint(model) -> np.ndarray:
    users = model.user_map_.ids[:50]
    return model.score(np.repeat(users, 20), np.tile(model.item_map_.ids[:20], len(users)))


def test_sigkill_mid_save_leaves_a_loadable_bundle(big_model, tmp_path):
    old = _fingerprint(big_model)
    with torch.no_grad():
        shifted = NCF.load(big_model.save(tmp_path / "probe"))
        for v in shifted.module_.state_dict().values():
            v.add_(0.5)
    new = _fingerprint(shifted)
    assert not np.array_equal(old, new)

    rng = random.Random(20240611)
    helper = subprocess.Popen(
        [sys.executable, "-c", SAVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        assert helper.stdout.readline().strip() == "imported", helper.stderr.read()
        for r in range(3):
            d = tmp_path / f"run{r}"
            big_model.save(d)
            helper.stdin.write(f"{d}\n")
            helper.stdin.flush()
            pid = int(helper.stdout.readline())
            assert helper.stdout.readline().strip() == "saved"  # saves are under way
            time.sleep(rng.uniform(0.005, 0.1))  # seeded; lands inside one of the following saves
            os.kill(pid, signal.SIGKILL)
            assert int(helper.stdout.readline()) == -signal.SIGKILL

            got = _fingerprint(NCF.load(d))  # never torn: the last completed save, whole
            assert np.array_equal(got, old) or np.array_equal(got, new)
            # A killed save may leave hidden temp files (ours, ".model.safetensors.*.tmp", or the
            # ".tmpXXXXXX" safetensors itself writes through); none may look like a bundle.
            for f in d.iterdir():
                if f.name != FILENAME:
                    assert f.name.startswith(".") and not f.name.endswith(".safetensors"), f.name
                    assert re.fullmatch(r"\.(model\.safetensors\..+\.tmp|tmp\w+)", f.name), f.name
    finally:
        helper.stdin.close()
        if helper.poll() is None:
            helper.kill()
        helper.wait(timeout=30)


# -- refusing bad files --------------------------------------------------------------------
def test_truncated_file(saved):
    f = bundle_file(saved)
    data = f.read_bytes()
    for n in (3, 100, len(data) // 2, len(data) - 1):
        f.write_bytes(data[:n])
        with pytest.raises(BundleError, match="truncated or corrupt"):
            NCF.load(saved)
        with pytest.raises(BundleError, match="truncated or corrupt"):
            load_model(saved)


def test_random_bytes(saved):
    bundle_file(saved).write_bytes(np.random.default_rng(5).bytes(4096))
    with pytest.raises(BundleError, match="not a readable model bundle"):
        load_model(saved)


class _TouchOnUnpickle:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_file_is_never_unpickled(saved, tmp_path):
    marker = tmp_path / "PWNED"
    payload = pickle.dumps({"weights": _TouchOnUnpickle(marker)})
    # sanity: the payload really would run code if unpickled
    probe = tmp_path / "probe-marker"
    pickle.loads(pickle.dumps(_TouchOnUnpickle(probe)))
    assert probe.exists()

    bundle_file(saved).write_bytes(payload)
    for load in (NCF.load, load_model, load_bundle):
        with pytest.raises(BundleError, match="not a readable model bundle"):
            load(saved)
    torch_style = tmp_path / "t"
    torch_style.mkdir()
    torch.save({"x": _TouchOnUnpickle(marker)}, torch_style / FILENAME)
    with pytest.raises(BundleError):
        load_model(torch_style)
    assert not marker.exists()


def test_safetensors_file_of_another_format(tmp_path):
    save_file({"w": torch.zeros(3)}, str(tmp_path / FILENAME), metadata={"format": "pt"})
    with pytest.raises(BundleError, match="not an ncf model bundle.*'pt'"):
        load_model(tmp_path)
    save_file({"w": torch.zeros(3)}, str(tmp_path / FILENAME))  # no metadata at all
    with pytest.raises(BundleError, match="not an ncf model bundle"):
        NCF.load(tmp_path)


def test_tensor_of_wrong_shape(saved):
    def shrink(ts):
        name = next(k for k in ts if k.startswith("weights.") and ts[k].ndim == 2)
        ts[name] = ts[name][:-1].clone()

    rewrite(saved, tensors=shrink)
    with pytest.raises(BundleError, match="weights do not match"):
        load_model(saved)


def test_id_table_inconsistent_with_interactions(saved):
    rewrite(saved, tensors=lambda ts: ts.update({"users.ids": ts["users.ids"][:3].clone()}))
    with pytest.raises(BundleError, match="id maps or interactions"):
        load_model(saved)


def test_format_version_from_the_future(saved):
    rewrite(saved, meta=lambda md: md.update(format_version=str(FORMAT_VERSION + 1)))
    for load in (NCF.load, load_model):
        with pytest.raises(BundleError, match="newer than this ncf") as e:
            load(saved)
        assert "upgrade ncf" in str(e.value)


def test_unreadable_format_version(saved):
    rewrite(saved, meta=lambda md: md.update(format_version="one"))
    with pytest.raises(BundleError, match="format_version"):
        load_model(saved)


def test_missing_folder_and_empty_folder(tmp_path):
    with pytest.raises(BundleError, match="no model bundle"):
        load_model(tmp_path / "nope")
    with pytest.raises(BundleError, match="folder without model.safetensors"):
        NCF.load(tmp_path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights(saved, bad):
    def poison(ts):
        name = next(k for k in ts if k.startswith("weights."))
        ts[name] = ts[name].clone()
        ts[name].view(-1)[0] = bad

    rewrite(saved, tensors=poison)
    with pytest.raises(BundleError, match="NaN or inf"):
        load_model(saved)


@pytest.mark.parametrize("key", ["config", "extra"])
def test_corrupt_config_json(saved, key):
    rewrite(saved, meta=lambda md: md.update({key: md[key][:-3] + "{,"}))
    with pytest.raises(BundleError, match="not valid JSON"):
        load_model(saved)


def test_invalid_stored_config(saved):
    def bad(md):
        cfg = json.loads(md["config"])
        cfg["factors"] = -3
        md["config"] = json.dumps(cfg)

    rewrite(saved, meta=bad)
    with pytest.raises(BundleError, match="stored config is invalid.*factors"):
        NCF.load(saved)


def test_metadata_missing_format_version(saved):  # found by the byte-flip property: was a KeyError
    rewrite(saved, meta=lambda md: md.pop("format_version"))
    for load in (NCF.load, load_model):
        with pytest.raises(BundleError, match="lacks 'format_version'"):
            load(saved)


def test_metadata_missing_model_class(saved):
    rewrite(saved, meta=lambda md: md.pop("model_class"))
    with pytest.raises(BundleError, match="lacks 'model_class'"):
        load_model(saved)


# -- edited files: the checksum, and the checks behind it (edits that also forge the checksum) ---
def test_edited_tensor_bytes_fail_the_checksum(saved):
    f = bundle_file(saved)
    raw = bytearray(f.read_bytes())
    raw[-5] ^= 0x01  # one bit in the last tensor's data: safetensors' structure is still valid
    f.write_bytes(bytes(raw))
    for load in (NCF.load, load_model):
        with pytest.raises(BundleError, match="do not match the bundle's checksum"):
            load(saved)
    rewrite(saved, tensors=lambda ts: ts["users.ids"].__setitem__(0, 999), forge_checksum=False)
    with pytest.raises(BundleError, match="checksum"):
        load_model(saved)


def _w2d(ts):
    return next(k for k in ts if k.startswith("weights.") and ts[k].ndim == 2)


FORGED = {
    "weights as float64": (
        lambda ts: ts.update({_w2d(ts): ts[_w2d(ts)].double()}),
        "dtype torch.float64, expected torch.float32",
    ),
    "weights as int64": (lambda ts: ts.update({_w2d(ts): ts[_w2d(ts)].long()}), "dtype torch.int64"),
    "ids as float": (lambda ts: ts.update({"users.ids": ts["users.ids"].double()}), "'users.ids' has dtype"),
    "indices as float": (lambda ts: ts.update({"train.user_idx": ts["train.user_idx"].double()}), "'train.user_idx'"),
    "index out of range": (lambda ts: ts["train.item_idx"].__setitem__(0, 10**6), "out of range"),
    "negative index": (lambda ts: ts["train.user_idx"].__setitem__(0, -1), "out of range"),
    "duplicate id": (lambda ts: ts["users.ids"].__setitem__(1, ts["users.ids"][0]), "unique"),
    "NaN timestamp": (lambda ts: ts["train.timestamps"].__setitem__(0, float("nan")), "timestamps contain NaN"),
    "missing table": (lambda ts: ts.pop("train.item_idx"), "missing or inconsistent"),
    "extra weight": (lambda ts: ts.update({"weights.extra": torch.zeros(2)}), "weights do not match"),
    "missing weight": (lambda ts: ts.pop(_w2d(ts)), "weights do not match"),
    "more users than embedding rows": (
        lambda ts: ts.update({"users.ids": torch.cat([ts["users.ids"], torch.tensor([10**9])])}),
        "weights do not match",
    ),
}


@pytest.mark.parametrize("edit", list(FORGED))
def test_forged_edits_are_refused(saved, edit):
    fn, match = FORGED[edit]
    rewrite(saved, tensors=fn)
    with pytest.raises(BundleError, match=re.escape(match)):
        NCF.load(saved)


@settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), min_size=1, max_size=3))
def test_any_flipped_bytes_are_refused_or_harmless(int_model, tmp_path_factory, flips):
    """Flip up to three bytes anywhere: BundleError, or (a flip in the header's padding or in a
    free-text field) a model that scores exactly like the original. Never a silently different one."""
    d = tmp_path_factory.mktemp("flip")
    fixed = copy.copy(int_model)  # fixed-length metadata, so the same flips hit the same bytes every run
    fixed.created_, fixed.fit_seconds_ = "2026-01-01T00:00:00+00:00", 1.0
    f = fixed.save(d)
    raw = bytearray(f.read_bytes())
    for pos, x in flips:
        raw[pos % len(raw)] ^= x
    f.write_bytes(bytes(raw))
    try:
        loaded = load_model(d)
    except BundleError as e:
        assert "\n" not in str(e)
        return
    np.testing.assert_array_equal(all_scores(loaded)[0], all_scores(int_model)[0])


def test_ncf_keeps_its_recency_so_a_loaded_model_folds_in_as_the_trained_one(tmp_path):
    """Fold-in weighs a history by the fitted half-life (recency="auto" resolves to one on a time
    split); a loaded NCF model used to lose it and fold histories in unweighted. It is saved as a
    weight now (under the checksum); a bundle from before falls back to the recorded metadata."""
    import json

    import numpy as np

    from cli_helpers import rewrite
    from ncf import NCF, split
    from ncf.data.interactions import Interactions
    from ncf.errors import BundleError
    from ncf.loading import load_model
    from ncf.synthetic import synthetic_interactions

    base = synthetic_interactions((60, 40, 900), seed=2)
    ts = np.random.default_rng(0).permutation(len(base)).astype(np.float64)
    data = Interactions.from_indices(base.user_map, base.item_map, base.user_idx, base.item_idx, ts)
    train, _ = split.leave_one_out(data, by="timestamp", seed=0)
    model = NCF(model="neumf", factors=4, layers=(8, 4), epochs=1, seed=0, device="cpu").fit(train, validation=None)
    assert model.recency_ is not None
    hist = list(train.item_map.raw(train.csr[0].indices))
    stamps = list(range(len(hist)))
    want = model.recommend_history(hist, k=5, timestamps=stamps)
    model.save(tmp_path / "m")
    for old in (False, True):  # as saved now, then as a bundle from before (no tensor; the metadata's value)
        if old:
            rewrite(tmp_path / "m", tensors=lambda t: t.pop("weights.recency_half_life"))
        loaded = load_model(tmp_path / "m")
        assert loaded.recency_ == model.recency_
        got = loaded.recommend_history(hist, k=5, timestamps=stamps)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_allclose(got[1], want[1], rtol=1e-6)

    def bad(md):
        md["extra"] = json.dumps({**json.loads(md["extra"]), "recency": -1.0})

    rewrite(tmp_path / "m", meta=bad)
    with pytest.raises(BundleError, match="recency half-life -1.0 is invalid"):
        load_model(tmp_path / "m")
