"""`ncf recommend --history / --histories / --explain`: fold-in from the command line."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from checkerboard import TRAIN
from cli_helpers import assert_clean_error, run
from ncf.baselines import make_baseline

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    model = make_baseline("ease", l2=10.0).fit(TRAIN)
    path = tmp_path_factory.mktemp("foldin") / "ease"
    model.save(path)
    return model, path


def frame(out: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(out), keep_default_na=False)


def test_history_prints_the_library_answer(bundle, capsys):
    model, path = bundle
    rc, out, err = run(capsys, "recommend", path, "--history", "2000,2001,2002", "-k", "4")
    assert rc == 0 and err == ""
    df = frame(out)
    assert list(df.columns) == ["user", "item", "rank", "score"]
    ids, scores = model.recommend_history([2000, 2001, 2002], k=4)
    assert df["user"].tolist() == ["history"] * 4 and df["rank"].tolist() == [1, 2, 3, 4]
    assert df["item"].tolist() == ids.tolist()
    np.testing.assert_allclose(df["score"], scores, atol=1e-6)


def test_histories_file_with_timestamps_and_unknown_items(bundle, capsys, tmp_path):
    model, path = bundle
    f = tmp_path / "h.csv"
    f.write_text("user,item,timestamp\na,2000,1\na,2001,2\na,99999,3\nb,2010,5\nb,2011,6\nb,2012,7\n")
    rc, out, err = run(capsys, "recommend", path, "--histories", f, "-k", "2")
    assert rc == 0
    assert err.count("\n") == 1 and "99999" in err and "ignored 1 unknown" in err  # one line, not an error
    df = frame(out)
    assert df["user"].tolist() == ["a", "a", "b", "b"]
    ids, _ = model.recommend_history([[2000, 2001, 99999], [2010, 2011, 2012]], k=2)
    assert df["item"].tolist() == ids.ravel().tolist()
    out_file = tmp_path / "recs.csv"
    rc, out, _ = run(capsys, "recommend", path, "--histories", f, "-k", "2", "--explain", "--out", out_file)
    assert rc == 0 and "wrote 4 rows" in out
    written = pd.read_csv(out_file, keep_default_na=False)
    assert list(written.columns) == ["user", "item", "rank", "score", "because"]
    for user, because in zip(written["user"], written["because"]):
        hist = {"a": {2000, 2001}, "b": {2010, 2011, 2012}}[user]
        assert because and {int(x) for x in because.split(";")} <= hist


@pytest.mark.parametrize("who", [("--user", "1012"), ("--history", "2005,2006,2007")])
def test_explain_adds_a_because_column(bundle, capsys, who):
    model, path = bundle
    rc, out, err = run(capsys, "recommend", path, *who, "-k", "3", "--explain", "--explain-n", "2")
    assert rc == 0, err
    df = frame(out)
    assert list(df.columns) == ["user", "item", "rank", "score", "because"]
    target = int(who[1]) if who[0] == "--user" else [int(x) for x in who[1].split(",")]
    want = model.explain(target, df["item"].tolist(), n=2)
    assert df["because"].tolist() == [";".join(str(i) for i, _ in e) for e in want]
    assert all(len(b.split(";")) <= 2 for b in df["because"] if b)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (("--history", "777,778"), ("777", "no item this model knows")),
        (("--history", ","), ("empty",)),
        (("--histories", "/no/such/file.csv"), ("does not exist",)),
        (("--history", "2000", "--user", "1000"), ("exactly one of", "--history")),
        (("--all-users", "--explain"), ("--explain",)),
        ((), ("--histories",)),
    ],
)
def test_bad_histories_are_one_line_errors(bundle, capsys, argv, words):
    _, path = bundle
    rc, _, err = run(capsys, "recommend", path, *argv)
    assert_clean_error(rc, err, *words)


def test_a_histories_file_of_unknown_items_or_bad_rows_is_refused(bundle, capsys, tmp_path):
    _, path = bundle
    f = tmp_path / "h.csv"
    f.write_text("user,item\na,2000\nb,424242\n")
    rc, _, err = run(capsys, "recommend", path, "--histories", f)
    assert_clean_error(rc, err, "424242", "'b'")
    f.write_text("user,item\na\n")
    rc, _, err = run(capsys, "recommend", path, "--histories", f)
    assert_clean_error(rc, err)
