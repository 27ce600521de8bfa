"""Issue 16, the command line: every bad input a one-line error (exit 2) before any work, nothing lost.

Each test names the defect it pins (numbers as in docs/RELIABILITY.md, "Hostile inputs").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_helpers import assert_clean_error, run
from ncf import NCF
from ncf.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")
TINY = ["--epochs", "1", "--factors", "4", "--layers", "8,4", "--batch-size", "256", "--seed", "0"]
TINY += ["--device", "cpu", "--quiet", "--no-pretrain"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile_cli")
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {"user": rng.integers(1, 30, 400), "item": rng.integers(100, 140, 400), "timestamp": np.arange(400)}
    )
    df.to_csv(d / "ratings.txt", index=False)
    return d


@pytest.fixture(scope="module")
def bundle(files):
    out = files / "model"
    assert (
        main(["train", "--data", str(files / "ratings.txt"), "--timestamp-col", "timestamp", *TINY, "--out", str(out)])
        == 0
    )
    return out


@pytest.fixture
def no_training(monkeypatch):
    """Training must not start: a bad output target is found first."""

    def boom(self, *a, **k):
        raise AssertionError("fit() ran although the output target was bad")

    monkeypatch.setattr(NCF, "fit", boom)


# -- defect 1: a bad --out is found before training, and any OSError is one line ---------------------
@pytest.mark.parametrize("case", ["existing file", "under a file", "model.safetensors is a folder", "empty"])
def test_train_bad_out_fails_before_training(case, files, tmp_path, capsys, no_training):
    (tmp_path / "afile.txt").write_text("x")
    (tmp_path / "dm" / "model.safetensors").mkdir(parents=True)
    out = {
        "existing file": tmp_path / "afile.txt",
        "under a file": tmp_path / "afile.txt" / "run",
        "model.safetensors is a folder": tmp_path / "dm",
        "empty": "",
    }[case]
    rc, stdout, err = run(capsys, "train", "--data", files / "ratings.txt", *TINY, "--out", out)
    assert_clean_error(rc, err, "--out")
    assert "trained" not in stdout
    assert (tmp_path / "afile.txt").read_text() == "x"


def test_recommend_bad_out_fails_before_scoring(bundle, tmp_path, capsys):
    (tmp_path / "afile.txt").write_text("x")
    rc, _, err = run(capsys, "recommend", bundle, "--user", "5", "--out", tmp_path / "afile.txt" / "recs.csv")
    assert_clean_error(rc, err, "--out", "afile.txt is a file")
    rc, _, err = run(capsys, "recommend", bundle, "--user", "5", "--out", tmp_path)
    assert_clean_error(rc, err, "is a folder")


@pytest.mark.parametrize("command", ["quickstart", "benchmark"])
def test_other_writers_check_out_first(command, tmp_path, capsys, monkeypatch):
    import ncf.benchmark
    import ncf.data.movielens

    def no_work(*a, **k):
        raise AssertionError("work started although --out was bad")

    monkeypatch.setattr(ncf.data.movielens, "movielens_100k", no_work)
    monkeypatch.setattr(ncf.benchmark, "run_benchmark", no_work)
    (tmp_path / "afile.txt").write_text("x")
    rc, _, err = run(capsys, command, "--out", tmp_path / "afile.txt")
    assert_clean_error(rc, err, "--out", "is a file")


def test_any_oserror_is_one_line(bundle, monkeypatch, capsys, tmp_path):
    import ncf.batch

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device", str(tmp_path / "x"))

    monkeypatch.setattr(ncf.batch, "atomic_path", disk_full)
    rc, _, err = run(capsys, "recommend", bundle, "--user", "5", "--out", tmp_path / "recs.csv")
    assert_clean_error(rc, err, "No space left on device")


# -- validate first: -k 0 and a holdout that holds nothing out fail before training -------------------
def test_train_k0_and_empty_holdout_fail_before_training(files, tmp_path, capsys, no_training):
    rc, _, err = run(
        capsys,
        "train",
        "--data",
        files / "ratings.txt",
        "--test-protocol",
        "leave-one-out",
        "-k",
        "0",
        *TINY,
        "--out",
        tmp_path / "m",
    )
    assert_clean_error(rc, err, "-k == 0")
    tiny = tmp_path / "tiny.csv"
    pd.DataFrame({"user": [1, 1, 1, 2, 2, 3], "item": [1, 2, 3, 1, 2, 3]}).to_csv(tiny, index=False)
    rc, _, err = run(capsys, "train", "--data", tiny, "--test-protocol", "holdout", *TINY, "--out", tmp_path / "m")
    assert_clean_error(rc, err, "held out no test interactions", "--holdout-n")


def test_entry_point_oserror_has_no_traceback(bundle, tmp_path):
    """The real entry point, on a target that passes every check but fails at the OS (a /proc file)."""
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs /proc")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "ncf", "recommend", str(bundle), "--user", "5", "--out", "/proc/self/x.csv"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# -- defect 7 (CLI) and the one integer rule for ids: a huge or odd --user is an unknown id ----------------
@pytest.mark.parametrize("user", ["99999999999999999999999", "+5", "0_5", "\uff15", "\u0665"])
def test_recommend_odd_int_ids_are_unknown_not_a_traceback(bundle, capsys, user):
    rc, out, err = run(capsys, "recommend", bundle, "--user", user, "-k", "2")
    assert_clean_error(rc, err, "unknown user id")
    assert out == ""


def test_recommend_canonical_int_id_still_works(bundle, capsys):
    rc, out, _ = run(capsys, "recommend", bundle, "--user", "5", "-k", "2")
    assert rc == 0 and out.splitlines()[1].startswith("5,")


# -- defect 8: evaluate says what it dropped, in every output, and refuses when nothing is left -------------
def test_evaluate_reports_dropped_rows_in_text_and_json(bundle, tmp_path, capsys):
    t = tmp_path / "t.csv"
    t.write_text("user,item\n5,100\n99991,101\n99992,102\n99993,103\n5,99999\n")
    rc, out, _ = run(capsys, "evaluate", bundle, "--test", t)
    assert rc == 0
    assert (
        "dropped 4 of 5 test rows: 3 with a user the model does not know (3 distinct users), 1 with an unknown item"
        in out
    )
    rc, out, _ = run(capsys, "evaluate", bundle, "--test", t, "--json")
    res = json.loads(out)
    assert res["test_rows"] == 5 and res["unknown_users_dropped"] == 3 and res["unknown_user_ids"] == 3
    assert res["unknown_items_dropped"] == 1 and res["users"] == 1


def test_evaluate_with_nothing_left_says_why(bundle, tmp_path, capsys):
    t = tmp_path / "t.csv"
    t.write_text("user,item\nu5,100\nu6,101\n")  # string ids against an int-id model
    rc, _, err = run(capsys, "evaluate", bundle, "--test", t)
    assert_clean_error(
        rc,
        err,
        "nothing left to evaluate",
        "2 with a user the model does not know",
        "user ids are strings but the model's are integers",
    )
    t.write_text("user,item\n99991,101\n")
    rc, _, err = run(capsys, "evaluate", bundle, "--test", t)
    assert_clean_error(rc, err, "nothing left to evaluate", "1 with a user the model does not know")
