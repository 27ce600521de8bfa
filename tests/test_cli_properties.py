"""Property-based tests (hypothesis) of the `ncf` CLI: generated files, flags and ids.

Contract: ``main(argv)`` returns 0 (and did the job) or 2 with exactly one line on stderr,
``ncf: error: ...``, never a traceback or another exit code. Examples are few (training is
the slow part) and ``derandomize=True`` makes every run the same.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ncf.cli import main
from ncf.loading import load_model

SETTINGS = dict(derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCALE = float(os.environ.get("NCF_FUZZ_SCALE", "1"))  # e.g. 20 for a longer bug hunt


def examples(n: int) -> int:
    return max(1, int(n * SCALE))


_TMP = Path(tempfile.mkdtemp(prefix="ncf-cli-props-"))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add overhead on a shared machine
    yield
    torch.set_num_threads(before)


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def assert_clean_failure(code: int, err: str, *, naming: str | None = None) -> None:
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ncf: error: "), err
    assert "Traceback" not in err
    if naming is not None:
        assert naming in lines[0], err


@pytest.fixture(scope="module")
def ratings(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame(
        {
            "user": rng.integers(0, 30, n),
            "item": rng.integers(0, 40, n),
            "rating": rng.integers(1, 6, n),
            "timestamp": np.arange(n),
        }
    )
    p = tmp_path_factory.mktemp("clip") / "ratings.csv"
    df.to_csv(p, index=False)
    return p


@pytest.fixture(scope="module")
def bundle(ratings, tmp_path_factory, one_thread) -> Path:
    out = tmp_path_factory.mktemp("clib") / "m"
    code, _, err = run(
        [
            "train",
            "--data",
            str(ratings),
            "--epochs",
            "1",
            "--factors",
            "4",
            "--layers",
            "8,4",
            "--seed",
            "0",
            "--device",
            "cpu",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    assert code == 0, err
    return out


CONTENT = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: ("user,item\n" + t).encode("utf-8", "surrogatepass")),
    st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5)), max_size=10).map(
        lambda rows: ("user,item\n" + "".join(f"{a},{b}\n" for a, b in rows)).encode("utf-8", "surrogatepass")
    ),
)


@settings(max_examples=examples(60), **SETTINGS)
@given(content=CONTENT, suffix=st.sampled_from([".csv", ".tsv", ".parquet", ".dat", ""]))
def test_describe_any_file_succeeds_or_fails_in_one_line(content, suffix):
    path = _TMP / f"d{suffix}"
    path.write_bytes(content)
    code, out, err = run(["data", "describe", str(path), "--user-col", "user", "--item-col", "item"])
    if code == 0:
        assert "users" in out and err == ""
    else:
        assert_clean_failure(code, err, naming=str(path))


# Flags of `ncf train` drawn from valid and invalid ranges alike (argparse-typed values, so
# argparse itself accepts them and the library has to judge them).
TRAIN_FLAGS = st.fixed_dictionaries(
    {},
    optional={
        "--model": st.sampled_from(["gmf", "mlp", "neumf"]),
        "--factors": st.integers(-2, 6).map(str),
        "--layers": st.sampled_from(["8,4", "6", "7,3", "", "0,4", "-8,4", "8,4,2"]),
        "--negatives": st.sampled_from(["1", "2", "0", "-1", "all"]),
        "--loss": st.sampled_from(["bce", "bpr"]),
        "--epochs": st.integers(-1, 2).map(str),
        "--batch-size": st.integers(-1, 300).map(str),
        "--learning-rate": st.sampled_from(["0.01", "0", "-1", "nan", "inf", "11", "1e-3"]),
        "--weight-decay": st.sampled_from(["0", "1e-4", "-1", "nan"]),
        "--dropout": st.sampled_from(["0", "0.5", "1", "-0.1", "nan"]),
        "--patience": st.integers(-1, 2).map(str),
        "--alpha": st.sampled_from(["0.5", "2", "nan"]),
        "--min-rating": st.sampled_from(["4", "0", "6", "nan", "inf", "-inf"]),
        "--sep": st.sampled_from([",", ";", "\t", "::", ""]),
        "--user-col": st.sampled_from(["user", "nope", "item", "0"]),
        "--test-protocol": st.sampled_from(["leave-one-out", "holdout", "temporal"]),
        "--holdout-n": st.integers(-1, 3).map(str),
        "-k": st.integers(-1, 3).map(str),
    },
)


@settings(max_examples=examples(40), **SETTINGS)
@given(flags=TRAIN_FLAGS, pretrain=st.booleans(), no_val=st.booleans())
def test_train_with_any_flags_succeeds_or_fails_in_one_line(ratings, flags, pretrain, no_val):
    out = _TMP / "train-out"
    argv = [
        "train",
        "--data",
        str(ratings),
        "--rating-col",
        "rating",
        "--timestamp-col",
        "timestamp",
        "--seed",
        "0",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        str(out),
    ]
    flags = {"--epochs": "1", **flags}
    for k, v in flags.items():
        argv.append(f"{k}={v}")
    argv += ["--pretrain"] if pretrain else []
    argv += ["--no-validation"] if no_val else []
    code, stdout, err = run(argv)
    if code == 0:
        assert err == "" and "saved to" in stdout
        assert load_model(out).recommend(load_model(out).user_map_.ids[:2], k=2)[0].shape[0] == 2
    else:
        assert_clean_failure(code, err)


@settings(max_examples=examples(60), **SETTINGS)
@given(
    users=st.lists(st.one_of(st.integers(-3, 40).map(str), st.text(max_size=6)), min_size=1, max_size=3),
    k=st.integers(-2, 60),
    include_seen=st.booleans(),
)
def test_recommend_any_ids_and_k(bundle, users, k, include_seen):
    argv = ["recommend", str(bundle), *(f"--user={u}" for u in users), f"-k={k}"]
    argv += ["--include-seen"] if include_seen else []
    code, out, err = run(argv)
    if code == 0:
        lines = out.strip().splitlines()
        assert lines[0] == "user,item,rank,score" and len(lines) - 1 <= len(users) * k
    else:
        assert_clean_failure(code, err)


@settings(max_examples=examples(40), **SETTINGS)
@given(content=CONTENT, k=st.integers(-1, 12), protocol=st.sampled_from(["full", "sampled", "full-unfiltered"]))
def test_evaluate_any_test_file(bundle, content, k, protocol):
    path = _TMP / "test.csv"
    path.write_bytes(content)
    code, out, err = run(
        [
            "evaluate",
            str(bundle),
            "--test",
            str(path),
            "--user-col",
            "user",
            "--item-col",
            "item",
            f"-k={k}",
            "--protocol",
            protocol,
            "--json",
        ]
    )
    if code != 0:
        assert_clean_failure(code, err)


@settings(max_examples=examples(30), **SETTINGS)
@given(cut=st.integers(0, 100_000), flip=st.integers(0, 100_000), byte=st.integers(0, 255))
def test_recommend_from_a_damaged_bundle(bundle, cut, flip, byte):
    raw = bytearray((bundle / "model.safetensors").read_bytes())
    raw[flip % len(raw)] = byte
    d = _TMP / "damaged"
    d.mkdir(exist_ok=True)
    (d / "model.safetensors").write_bytes(bytes(raw[: max(1, cut % (len(raw) + 1))]))
    code, out, err = run(["recommend", str(d), "--all-users", "-k", "2"])
    if code != 0:
        assert_clean_failure(code, err, naming=str(d))
