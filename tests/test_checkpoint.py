"""Per-epoch checkpoints: exact resume after an interrupt or kill -9, Ctrl-C keeps the best model, refusals."""

from __future__ import annotations

import json
import os
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
from safetensors import safe_open

from ncf import NCF, BundleError, ConfigError, load_interactions
from ncf.cli import main
from ncf.persist import load_bundle

# Pretraining (gmf -> mlp -> fused neumf, then the three refit stages) with dropout, so the
# resume has to get every stage, the sampling generator and the global (dropout) RNG right.
PRETRAIN = dict(
    model="neumf",
    pretrain=True,
    factors=4,
    layers=(8, 4),
    epochs=2,
    batch_size=256,
    patience=5,
    dropout=0.2,
    refit=True,
    seed=3,
    device="cpu",
)
STAGES = ["gmf", "mlp", "neumf", "gmf_refit", "mlp_refit", "neumf_refit"]


def _data(n_users: int = 40, n_items: int = 60, n: int = 800, seed: int = 0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"u": rng.integers(0, n_users, n), "i": rng.integers(0, n_items, n), "t": np.arange(float(n))})
    return load_interactions(df, user="u", item="i", timestamp="t")


DATA = _data()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: the same arithmetic in every run (and in the child processes),
    and no thread oversubscription on a shared 2-core machine (10x faster there)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _weights(model: NCF) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.module_.state_dict().items()}


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.fixture(scope="module")
def reference(one_thread):
    """The uninterrupted run every resumed run must reproduce."""
    m = NCF(**PRETRAIN).fit(DATA)
    return _weights(m), m.validation_metrics_, m.best_epoch_, m.history_


class _InterruptAt:
    """A callback that raises KeyboardInterrupt (as Ctrl-C would) at the n-th finished epoch of the fit."""

    def __init__(self, n: int) -> None:
        self.n, self.seen = n, 0

    def __call__(self, epoch, logs):
        self.seen += 1
        if self.seen == self.n:
            raise KeyboardInterrupt


def test_interrupted_fit_resumes_to_the_same_weights_at_every_epoch_of_every_stage(reference, tmp_path):
    """Kill points: after every epoch of all six stages (gmf, mlp, neumf and their refits)."""
    ref_w, ref_val, ref_best, ref_hist = reference
    points = [(stage, h["epoch"]) for stage, res in ref_hist.items() for h in res["history"]]
    assert [s for s, _ in points][0] == "gmf" and {s for s, _ in points} == set(STAGES)
    for at, (stage, epoch) in enumerate(points, 1):
        ck = tmp_path / f"k{at}"
        with pytest.raises(KeyboardInterrupt):
            NCF(**PRETRAIN, callbacks=[_InterruptAt(at)]).fit(DATA, checkpoint_dir=ck)
        resumed = NCF(**PRETRAIN).fit(DATA, checkpoint_dir=ck, resume=True)
        # Tolerance 1e-6 is the issue's bar on CPU; in practice the weights are bit-identical.
        assert _max_diff(_weights(resumed), ref_w) <= 1e-6, (stage, epoch)
        assert resumed.validation_metrics_ == ref_val and resumed.best_epoch_ == ref_best, (stage, epoch)
        assert sorted(p.stem for p in ck.glob("*.safetensors")) == sorted(STAGES)


def test_interrupt_inside_a_checkpoint_write_keeps_the_previous_one(reference, tmp_path, monkeypatch):
    """Kill point: inside the atomic write of the 4th stage checkpoint, after the temp file is
    written and fsynced, before the rename. The previous checkpoint stays; resume is exact."""
    import ncf.persist

    real, calls = ncf.persist.os.replace, {"n": 0}

    def replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 5:  # run.json, gmf epochs 1-2, gmf done; the 5th write (mlp epoch 1) is interrupted
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(ncf.persist.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        NCF(**PRETRAIN).fit(DATA, checkpoint_dir=tmp_path)
    monkeypatch.undo()
    assert not [f.name for f in tmp_path.iterdir() if f.name.endswith(".tmp")]  # the temp file was removed
    (tmp_path / ".neumf.safetensors.stale.tmp").write_bytes(b"junk from an earlier crash")  # ignored
    resumed = NCF(**PRETRAIN).fit(DATA, checkpoint_dir=tmp_path, resume=True)
    assert _max_diff(_weights(resumed), reference[0]) <= 1e-6
    assert resumed.validation_metrics_ == reference[1]


def test_stage_file_records_stage_status_and_epoch(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        NCF(**PRETRAIN, callbacks=[_InterruptAt(4)]).fit(DATA, checkpoint_dir=tmp_path)
    metas = {}
    for f in tmp_path.glob("*.safetensors"):
        with safe_open(str(f), framework="pt") as fh:
            metas[f.stem] = fh.metadata()
            keys = set(fh.keys())
        if metas[f.stem]["status"] == "running":
            assert {"rng.gen", "rng.torch"} <= keys and any(k.startswith("opt.") for k in keys)
            assert any(k.startswith("best.") for k in keys)  # early-stopping state
    assert metas["gmf"]["status"] == "done" and metas["gmf"]["stage"] == "gmf"
    assert metas["mlp"]["status"] == "running" and json.loads(metas["mlp"]["loop"])["epoch"] == 1
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["seed"] == 3 and run["data"] == DATA.fingerprint() and run["params"]["pretrain"] is True


def test_finished_run_resumes_instantly_to_the_same_model(reference, tmp_path):
    NCF(**PRETRAIN).fit(DATA, checkpoint_dir=tmp_path)
    calls = []
    again = NCF(**PRETRAIN, callbacks=[lambda e, logs: calls.append(e)]).fit(DATA, checkpoint_dir=tmp_path, resume=True)
    assert calls == []  # every stage was done: nothing retrained
    assert _max_diff(_weights(again), reference[0]) <= 1e-6


def test_resume_without_explicit_seed_takes_the_checkpoints(tmp_path):
    params = {**PRETRAIN, "pretrain": False, "seed": None}
    with pytest.raises(KeyboardInterrupt):
        NCF(**params, callbacks=[_InterruptAt(2)]).fit(DATA, checkpoint_dir=tmp_path)
    seed = json.loads((tmp_path / "run.json").read_text())["seed"]
    resumed = NCF(**params).fit(DATA, checkpoint_dir=tmp_path, resume=True)
    fresh = NCF(**{**params, "seed": seed}).fit(DATA)
    assert resumed.seed_ == seed and _max_diff(_weights(resumed), _weights(fresh)) <= 1e-6


# -- refusals --------------------------------------------------------------------------------
SMALL = {**PRETRAIN, "pretrain": False, "epochs": 2}


def test_existing_checkpoint_without_resume_is_refused(tmp_path):
    NCF(**SMALL).fit(DATA, checkpoint_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"already holds a run's checkpoints.*--resume"):
        NCF(**SMALL).fit(DATA, checkpoint_dir=tmp_path)


@pytest.mark.parametrize(
    "change, match",
    [({"factors": 6}, r"factors=6 \(checkpoint: 4\)"), ({"seed": 4}, r"seed=4 \(checkpoint: 3\)"), ("data", "data")],
)
def test_resume_of_a_different_run_is_refused(tmp_path, change, match):
    NCF(**SMALL).fit(DATA, checkpoint_dir=tmp_path)
    params, data = (SMALL, _data(seed=1)) if change == "data" else ({**SMALL, **change}, DATA)
    with pytest.raises(ConfigError, match=f"different run.*{match}"):
        NCF(**params).fit(data, checkpoint_dir=tmp_path, resume=True)


def test_corrupt_checkpoint_files_are_refused(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        NCF(**SMALL, callbacks=[_InterruptAt(2)]).fit(DATA, checkpoint_dir=tmp_path)
    f = tmp_path / "neumf.safetensors"
    good = f.read_bytes()
    f.write_bytes(good[: len(good) // 2])
    with pytest.raises(BundleError, match="truncated or corrupt"):
        NCF(**SMALL).fit(DATA, checkpoint_dir=tmp_path, resume=True)
    f.write_bytes(good)
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(BundleError, match="run.json is unreadable"):
        NCF(**SMALL).fit(DATA, checkpoint_dir=tmp_path, resume=True)
    (tmp_path / "run.json").write_text(json.dumps({"format": "ncf-checkpoint", "format_version": 99, "seed": 3}))
    with pytest.raises(BundleError, match="newer than this ncf"):
        NCF(**SMALL).fit(DATA, checkpoint_dir=tmp_path, resume=True)


def test_checkpoint_never_unpickles(tmp_path):
    import pickle

    marker = tmp_path / "PWNED"

    class Touch:
        def __reduce__(self):
            return (Path.touch, (marker,))

    with pytest.raises(KeyboardInterrupt):
        NCF(**SMALL, callbacks=[_InterruptAt(1)]).fit(DATA, checkpoint_dir=tmp_path / "ck")
    (tmp_path / "ck" / "neumf.safetensors").write_bytes(pickle.dumps(Touch()))
    with pytest.raises(BundleError, match="not a readable checkpoint"):
        NCF(**SMALL).fit(DATA, checkpoint_dir=tmp_path / "ck", resume=True)
    assert not marker.exists()


# -- Ctrl-C and divergence keep the best model so far ------------------------------------------
def test_ctrl_c_keeps_the_best_model_so_far(tmp_path):
    seen = []
    m = NCF(**{**SMALL, "epochs": 5, "refit": False}, callbacks=[lambda e, logs: seen.append(logs), _InterruptAt(3)])
    with pytest.raises(KeyboardInterrupt):
        m.fit(DATA)
    # The interrupt lands in epoch 3 (before its end-of-epoch record): the best of epochs 1-2 is kept.
    vals = [logs["val_ndcg@10"] for logs in seen][:2]
    best = int(np.argmax(vals)) + 1  # first maximum, as early stopping keeps it
    assert m.interrupted_["reason"] == "interrupted" and f"epoch {best}" in m.interrupted_["kept"]
    assert m.best_epoch_ == best and m.validation_metrics_["val_ndcg@10"] == vals[best - 1]
    loaded = NCF.load(m.save(tmp_path / "b"))
    np.testing.assert_array_equal(
        loaded.recommend(DATA.user_map.ids[:5], k=3)[0], m.recommend(DATA.user_map.ids[:5], k=3)[0]
    )


def test_ctrl_c_in_the_first_epoch_keeps_nothing():
    m = NCF(**PRETRAIN, callbacks=[_InterruptAt(1)])  # no epoch of any stage has finished
    with pytest.raises(KeyboardInterrupt):
        m.fit(DATA)
    assert not m.is_fitted


@pytest.mark.parametrize(("at", "kinds"), [(2, {"gmf"}), (4, {"gmf", "mlp"})])
def test_ctrl_c_during_pretraining_keeps_the_best_finished_stage_and_says_which(tmp_path, at, kinds):
    """Issue 16, defect 9: before the fix this kept nothing (NeuMF had not started)."""
    m = NCF(**PRETRAIN, callbacks=[_InterruptAt(at)])  # 2: gmf epoch 2; 4: mlp epoch 2
    with pytest.raises(KeyboardInterrupt):
        m.fit(DATA)
    assert m.is_fitted and m.kind_ in kinds and m.interrupted_["reason"] == "interrupted"
    assert f"a {m.kind_.upper()} model: NEUMF's pretraining did not finish" in m.interrupted_["kept"]
    loaded = NCF.load(m.save(tmp_path / "b"))  # the bundle says what it holds
    assert loaded.kind_ == loaded.model == m.kind_
    users = DATA.user_map.ids[:5]
    np.testing.assert_array_equal(loaded.recommend(users, k=3)[0], m.recommend(users, k=3)[0])


def test_cli_resume_of_a_folder_without_a_run_is_refused(tmp_path, capsys):
    """Issue 16, defect 9: --resume on a missing folder used to start from scratch silently."""
    code = main(["train", "--data", "ml-100k", "--resume", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--checkpoint-dir" in err, err
    assert not (tmp_path / "o").exists()


def test_divergence_in_the_cli_saves_the_best_model_and_advises(tmp_path, monkeypatch, capsys):
    import ncf.nn
    import ncf.train.sources

    original, original_epoch = ncf.nn.NeuMF.forward_l2, ncf.train.sources.UniformNegatives.epoch
    epochs = {"n": 0}

    def epoch(self, gen, *rest):
        epochs["n"] += 1
        return original_epoch(self, gen, *rest)

    def forward_l2(self, u, i):
        out, l2 = original(self, u, i)
        return (out * float("nan"), l2) if epochs["n"] >= 2 else (out, l2)  # epoch 1 is fine, later ones not

    monkeypatch.setattr(ncf.train.sources.UniformNegatives, "epoch", epoch)
    monkeypatch.setattr(ncf.nn.NeuMF, "forward_l2", forward_l2)
    monkeypatch.setattr("ncf.train.steps.supports", lambda *a, **k: False)  # the NaN is injected on the autograd path
    csv = tmp_path / "d.csv"
    DATA.to_frame().rename(columns={"user": "u", "item": "i"}).to_csv(csv, index=False)
    code = main(
        [
            "train",
            "--data",
            str(csv),
            "--user-col",
            "u",
            "--item-col",
            "i",
            "--factors",
            "4",
            "--layers",
            "8,4",
            "--epochs",
            "4",
            "--batch-size",
            "256",
            "--seed",
            "0",
            "--device",
            "cpu",
            "--quiet",
            "--no-pretrain",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "diverged" in err and "lower the learning rate" in err and "regularisation" in err
    assert "saved the best model so far (stage neumf, epoch 1" in err
    monkeypatch.undo()
    assert NCF.load(tmp_path / "out").best_epoch_ == 1


# -- kill -9 and Ctrl-C on a real `ncf train` process ---------------------------------------------
RUNNER = textwrap.dedent(
    """
    import sys, torch
    torch.set_num_threads(int(sys.argv[1]))
    from ncf.cli import main
    sys.exit(main(sys.argv[2:]))
    """
)


@pytest.fixture(scope="module")
def cli_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckcli")
    rng = np.random.default_rng(7)
    n = 2000
    df = pd.DataFrame({"u": rng.integers(0, 150, n), "i": rng.integers(0, 200, n), "t": np.arange(n)})
    df.to_csv(d / "ratings.csv", index=False)
    return d / "ratings.csv"


def _train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--data",
        str(data),
        "--user-col",
        "u",
        "--item-col",
        "i",
        "--timestamp-col",
        "t",
        "--model",
        "neumf",
        "--factors",
        "8",
        "--layers",
        "16,8",
        "--dropout",
        "0.1",
        "--epochs",
        "5",
        "--learning-rate",
        "0.01",
        "--negatives",
        "4",
        "--patience",
        "20",
        "--refit",
        "--lr-schedule",  # constant: the linear decay's best epoch on this small set is the 1st
        "constant",
        "--batch-size",
        "256",
        "--seed",
        "5",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        str(out),
        *extra,
    ]


def _stage_epoch(ck: Path, stage: str) -> int:
    f = ck / f"{stage}.safetensors"
    if not f.exists():
        return 0
    try:
        with safe_open(str(f), framework="pt") as fh:
            md = fh.metadata()
    except Exception:  # noqa: BLE001 - never torn (atomic rename), but be safe while polling
        return 0
    return 10**6 if md["status"] == "done" else json.loads(md["loop"])["epoch"]


def _start(args: list[str]) -> subprocess.Popen:
    src = str(Path(__file__).parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, "1", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for(proc: subprocess.Popen, ck: Path, stage: str, epoch: int, timeout: float = 120.0) -> None:
    t_end = time.monotonic() + timeout
    while _stage_epoch(ck, stage) < epoch:
        if proc.poll() is not None:
            pytest.fail(f"ncf train ended before {stage} epoch {epoch} was checkpointed: {proc.stderr.read()}")
        if time.monotonic() > t_end:
            proc.kill()
            pytest.fail(f"no checkpoint of {stage} epoch {epoch} after {timeout}s")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def cli_reference(cli_data, tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("ref") / "model"
    assert main(_train_args(cli_data, out)) == 0
    b = load_bundle(out)
    assert b.extra["best_epoch"] >= 2  # so the refit run has an epoch after the kill point below
    return b


# Kill points: the early-stopping run after its 2nd epoch's checkpoint, and the refit run
# after its 1st (the kill lands wherever the process is then: training, evaluating or writing).
@pytest.mark.parametrize("stage, epoch", [("neumf", 2), ("neumf_refit", 1)])
def test_kill_9_then_resume_gives_the_uninterrupted_model(cli_data, cli_reference, tmp_path, stage, epoch):
    ck, out = tmp_path / "ck", tmp_path / "model"
    proc = _start(_train_args(cli_data, out, "--checkpoint-dir", str(ck)))
    try:
        _wait_for(proc, ck, stage, epoch)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists()  # it really died before the end
    assert main(_train_args(cli_data, out, "--resume", str(ck))) == 0
    got, ref = load_bundle(out), cli_reference
    assert _max_diff(got.weights, ref.weights) <= 1e-6  # the issue's bar; bit-identical in practice
    assert got.extra["validation_metrics"] == ref.extra["validation_metrics"]
    assert got.extra["best_epoch"] == ref.extra["best_epoch"]


def test_ctrl_c_on_ncf_train_saves_the_best_model_and_says_where(cli_data, tmp_path):
    ck, out = tmp_path / "ck", tmp_path / "model"
    proc = _start(_train_args(cli_data, out, "--checkpoint-dir", str(ck)))
    try:
        _wait_for(proc, ck, "neumf", 1)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        err = proc.stderr.read().strip()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 130, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("ncf: interrupted; saved the best model so far (stage neumf, epoch") and str(out) in err
    assert f"--resume {ck}" in err
    assert load_bundle(out).model_class == "NCF"
