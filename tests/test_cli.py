"""The `ncf` command line, run in-process through ncf.cli.main (plus one real entry-point run)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from cli_helpers import assert_clean_error, run
from ncf import NCF
from ncf.cli import main
from ncf.persist import FILENAME, FORMAT_VERSION

TINY = ["--epochs", "2", "--factors", "4", "--layers", "8,4", "--batch-size", "256", "--seed", "0"]
TINY += ["--device", "cpu", "--quiet"]


def _frame(n_users: int = 20, per_user: int = 8, n_items: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, per_user, replace=False)
        for t, i in enumerate(items):
            rows.append((f"u{u:02d}", 100 + int(i), 1_000_000 + 3600 * (u * per_user + t)))
    return pd.DataFrame(rows, columns=["user", "item", "timestamp"])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """train.csv (all but each user's latest) and test.csv (each user's latest)."""
    d = tmp_path_factory.mktemp("cli")
    df = _frame()
    last = df.groupby("user")["timestamp"].transform("max") == df["timestamp"]
    df[~last].to_csv(d / "train.csv", index=False)
    df[last].to_csv(d / "test.csv", index=False)
    df.to_csv(d / "all.csv", index=False)
    return d


@pytest.fixture(scope="module")
def bundle(files):
    out = files / "model"
    rc = main(["train", "--data", str(files / "train.csv"), "--timestamp-col", "timestamp", *TINY, "--out", str(out)])
    assert rc == 0
    return out


# -- happy paths -------------------------------------------------------------------------
def test_entry_point_help():
    r = subprocess.run([sys.executable, "-m", "ncf", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for cmd in ("train", "evaluate", "recommend", "data"):
        assert cmd in r.stdout
    assert "Traceback" not in r.stderr


def test_the_command_exits_fast_with_its_output_and_exit_code(bundle, capsys):
    # `python -m ncf` (like the `ncf` script) leaves through ncf.cli.run's os._exit: what the
    # command printed must all arrive, and its exit code must be the process's
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ncf", *args], capture_output=True, text=True, timeout=120)

    ok = cli("recommend", str(bundle), "--all-users", "-k", "5")
    rc, expected, _ = run(capsys, "recommend", bundle, "--all-users", "-k", "5")
    assert ok.returncode == rc == 0 and ok.stdout == expected  # every line, flushed before the exit
    bad = cli("recommend", str(bundle), "--user", "nobody")
    assert bad.returncode == 2 and bad.stderr.startswith("ncf: error:") and "Traceback" not in bad.stderr


def test_train_writes_a_bundle(bundle, capsys):
    assert (bundle / FILENAME).exists()
    m = NCF.load(bundle)
    assert (m.factors, list(m.layers), m.epochs) == (4, [8, 4], 2)
    assert m.user_map_.kind == "str" and len(m.user_map_) == 20
    assert m.train_.timestamps is not None


def test_train_prints_summary(files, tmp_path, capsys):
    rc, out, err = run(capsys, "train", "--data", files / "train.csv", *TINY, "--out", tmp_path / "m")
    assert rc == 0, err
    assert "saved to" in out and str(tmp_path / "m") in out


def test_evaluate_json(bundle, files, capsys):
    rc, out, err = run(
        capsys, "evaluate", bundle, "--test", files / "test.csv", "--timestamp-col", "timestamp", "--json"
    )
    assert rc == 0, err
    res = json.loads(out)
    assert res["protocol"] == "full"
    assert res["users"] == 20 and res["test_interactions"] == 20
    assert 0.0 <= res["ndcg@10"] <= 1.0


def test_evaluate_text_and_sampled(bundle, files, capsys):
    rc, out, _ = run(
        capsys,
        "evaluate",
        bundle,
        "--test",
        files / "test.csv",
        "--protocol",
        "sampled",
        "--sampled-negatives",
        "5",
        "-k",
        "3",
    )
    assert rc == 0
    assert out.startswith("sampled protocol, 20 users") and "hr@3=" in out


def test_recommend_one_user(bundle, capsys):
    rc, out, err = run(capsys, "recommend", bundle, "--user", "u03", "-k", "3")
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "user,item,rank,score"
    assert len(lines) == 4
    ids, scores = NCF.load(bundle).recommend("u03", k=3)
    for r, (line, i, s) in enumerate(zip(lines[1:], ids, scores), 1):
        u, item, rank, score = line.split(",")
        assert (u, int(item), int(rank)) == ("u03", i, r)
        assert float(score) == pytest.approx(float(s), abs=1e-6)


def test_recommend_several_users_to_stdout(bundle, capsys):
    rc, out, _ = run(capsys, "recommend", bundle, "--user", "u01", "--user", "u02", "-k", "2")
    assert rc == 0
    users = [line.split(",")[0] for line in out.strip().splitlines()[1:]]
    assert users == ["u01", "u01", "u02", "u02"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_recommend_all_users_to_file(bundle, tmp_path, capsys, suffix):
    target = tmp_path / f"recs{suffix}"
    rc, out, err = run(capsys, "recommend", bundle, "--all-users", "-k", "3", "--out", target)
    assert rc == 0, err
    assert out.startswith("wrote 60 rows")
    df = pd.read_csv(target) if suffix == ".csv" else pd.read_parquet(target)
    assert list(df.columns) == ["user", "item", "rank", "score"]
    assert len(df) == 60 and df["user"].nunique() == 20
    assert df.groupby("user")["rank"].apply(list).map(lambda r: r == [1, 2, 3]).all()
    ids, _ = NCF.load(bundle).recommend(["u00"], k=3)
    assert df[df["user"] == "u00"]["item"].tolist() == list(ids[0])


def test_train_with_test_protocol_prints_test_metrics(files, tmp_path, capsys):
    rc, out, err = run(
        capsys,
        "train",
        "--data",
        files / "all.csv",
        "--timestamp-col",
        "timestamp",
        *TINY,
        "--test-protocol",
        "leave-one-out",
        "-k",
        "5",
        "--out",
        tmp_path / "m",
    )
    assert rc == 0, err
    assert "held out 20 test interactions (leave-one-out)" in out
    test_line = next(line for line in out.splitlines() if line.startswith("test ("))
    assert "hr@5=" in test_line and "ndcg@5=" in test_line


def test_data_describe(files, capsys):
    rc, out, err = run(capsys, "data", "describe", files / "all.csv", "--timestamp-col", "timestamp")
    assert rc == 0, err
    fields = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}
    assert (fields["users"], fields["items"], fields["interactions"]) == ("20", "30", "160")
    assert "time range" in out


# -- bad input: exit 2, one line on stderr, no traceback ---------------------------------
def test_missing_file(tmp_path, capsys):
    rc, _, err = run(capsys, "train", "--data", tmp_path / "nope.csv", *TINY, "--out", tmp_path / "m")
    assert_clean_error(rc, err, "nope.csv", "does not exist")
    rc, _, err = run(capsys, "data", "describe", tmp_path / "nope.csv")
    assert_clean_error(rc, err, "does not exist")


def test_unknown_column_lists_columns_found(files, tmp_path, capsys):
    rc, _, err = run(
        capsys, "train", "--data", files / "train.csv", "--user-col", "customer", *TINY, "--out", tmp_path / "m"
    )
    assert_clean_error(rc, err, "'customer' not found", "columns found", "'user'", "'item'", "'timestamp'")


def test_empty_data_header_only(tmp_path, capsys):
    f = tmp_path / "empty.csv"
    f.write_text("user,item,timestamp\n")
    rc, _, err = run(capsys, "train", "--data", f, *TINY, "--out", tmp_path / "m")
    assert_clean_error(rc, err, "no data rows")
    assert not (tmp_path / "m").exists()


def test_non_numeric_ratings(tmp_path, capsys):
    f = tmp_path / "r.csv"
    f.write_text("user,item,rating\na,1,5\nb,2,five\n")
    rc, _, err = run(capsys, "data", "describe", f, "--rating-col", "rating")
    assert_clean_error(rc, err, "rating", "row 2", "not a number", "'five'")


def test_user_and_item_same_column(files, tmp_path, capsys):
    rc, _, err = run(
        capsys,
        "train",
        "--data",
        files / "train.csv",
        "--user-col",
        "user",
        "--item-col",
        "user",
        *TINY,
        "--out",
        tmp_path / "m",
    )
    assert_clean_error(rc, err, "both name column", "'user'")


@pytest.mark.parametrize("k", ["0", "-2"])
def test_recommend_k_not_positive(bundle, capsys, tmp_path, k):
    rc, _, err = run(capsys, "recommend", bundle, "--user", "u01", "-k", k)
    assert_clean_error(rc, err, f"k == {k}", ">= 1")
    rc, _, err = run(capsys, "recommend", bundle, "--all-users", "-k", k, "--out", tmp_path / "x.csv")
    assert_clean_error(rc, err, f"k == {k}")
    assert not (tmp_path / "x.csv").exists()


def test_unknown_model_name(files, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", str(files / "train.csv"), "--model", "transformer", "--out", str(tmp_path / "m")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'transformer'" in err and "Traceback" not in err


def test_bundle_from_newer_format(bundle, tmp_path, capsys):
    d = tmp_path / "future"
    d.mkdir()
    with safe_open(str(bundle / FILENAME), framework="pt") as fh:
        meta = dict(fh.metadata())
    meta["format_version"] = str(FORMAT_VERSION + 1)
    save_file(load_file(str(bundle / FILENAME)), str(d / FILENAME), metadata=meta)
    rc, _, err = run(capsys, "recommend", d, "--user", "u01")
    assert_clean_error(rc, err, f"bundle format {FORMAT_VERSION + 1}", "newer", "upgrade ncf")
    rc, _, err = run(capsys, "evaluate", d, "--test", tmp_path / "whatever.csv")
    assert_clean_error(rc, err, "newer")


def test_evaluate_folder_without_bundle(files, tmp_path, capsys):
    rc, _, err = run(capsys, "evaluate", tmp_path, "--test", files / "test.csv")
    assert_clean_error(rc, err, "no model bundle", "model.safetensors")


def test_recommend_needs_user_or_all_users(bundle, capsys):
    rc, _, err = run(capsys, "recommend", bundle)
    assert_clean_error(rc, err, "--user", "--all-users")


def test_recommend_unknown_user(bundle, tmp_path, capsys):
    rc, _, err = run(capsys, "recommend", bundle, "--user", "u01", "--user", "stranger")
    assert_clean_error(rc, err, "unknown user id", "'stranger'")
    rc, _, err = run(capsys, "recommend", bundle, "--user", "stranger", "--out", tmp_path / "x.parquet")
    assert_clean_error(rc, err, "'stranger'")
    assert not (tmp_path / "x.parquet").exists()


def test_recommend_bad_output_suffix(bundle, tmp_path, capsys):
    rc, _, err = run(capsys, "recommend", bundle, "--all-users", "--out", tmp_path / "x.json")
    assert_clean_error(rc, err, ".csv", ".parquet")
