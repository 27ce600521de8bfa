"""Data-parallel training: 2 CPU processes (gloo) launched by torchrun reach single-process quality."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ncf
from ncf import NCF, evaluate, split
from ncf.baselines import Popularity
from ncf.data.ids import IdMap
from ncf.data.interactions import Interactions
from ncf.synthetic import synthetic_interactions
from serve_helpers import free_port

PARAMS = dict(
    model="neumf",
    factors=8,
    layers=(16, 8),
    epochs=6,
    batch_size=1024,
    learning_rate=0.01,
    seed=0,
    pretrain=False,
    weight_decay=1e-4,
)  # one stage, light L2: what the CLI run below trains


def _grouped(
    n_users: int = 320, n_items: int = 160, groups: int = 8, per_user: int = 16, seed: int = 0
) -> Interactions:
    """Users in groups that mostly pick their own group's items: structure popularity cannot see."""
    rng = np.random.default_rng(seed)
    g_items = n_items // groups
    users = np.repeat(np.arange(n_users), per_user)
    own = rng.random(len(users)) < 0.85
    group = users % groups
    items = np.where(own, group * g_items + rng.integers(0, g_items, len(users)), rng.integers(0, n_items, len(users)))
    return Interactions.from_indices(IdMap(np.arange(n_users)), IdMap(np.arange(n_items)), users, items)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, object]:
    full = _grouped()
    train, test = split.holdout(full, n=2, by="random", seed=0)
    path = tmp_path_factory.mktemp("ddp") / "train.csv"
    train.to_frame().to_csv(path, index=False)
    return path, train, test


def test_two_processes_reach_single_process_quality(data, tmp_path):
    path, train, test = data
    src = str(Path(ncf.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        "-m",
        "ncf",
        "train",
        "--data",
        str(path),
        "--quiet",
        "--out",
        str(tmp_path / "ddp"),
        "--model",
        "neumf",
        "--factors",
        "8",
        "--layers",
        "16,8",
        "--epochs",
        "6",
        "--batch-size",
        "1024",
        "--learning-rate",
        "0.01",
        "--weight-decay",
        "1e-4",
        "--no-pretrain",
        "--seed",
        "0",
        "--device",
        "cpu",
    ]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "data-parallel: 2 ranks" in run.stdout  # rank 0 printed; rank 1 stayed quiet
    assert run.stdout.count("trained neumf") == 1
    ddp = NCF.load(tmp_path / "ddp")
    # The training file's raw ids are the same ints as the in-memory split's.
    ddp_res = evaluate(ddp, test.reindex(ddp.user_map_, ddp.item_map_), k=10)

    torch.set_num_threads(1)
    single = NCF(**PARAMS, device="cpu").fit(train)
    single_res = evaluate(single, test, k=10)
    popularity = evaluate(Popularity().fit(train), test, k=10)
    print(
        f"NDCG@10: ddp {ddp_res['ndcg@10']:.4f}, single {single_res['ndcg@10']:.4f}, popularity {popularity['ndcg@10']:.4f}"
    )
    # 320 users x 2 held-out items: NDCG@10 moves by ~0.02 between seeds on this data, and
    # DDP sees other negatives than the single process; 0.03 allows that noise, while the
    # margin over popularity checks that the two ranks really learned together.
    assert ddp_res["ndcg@10"] >= single_res["ndcg@10"] - 0.03, (ddp_res["ndcg@10"], single_res["ndcg@10"])
    assert ddp_res["ndcg@10"] > popularity["ndcg@10"] + 0.02
    assert np.isfinite(ddp.validation_metrics_["val_ndcg@10"])


def test_shards_are_disjoint_and_cover_equal_parts():
    from ncf.train.sources import UniformNegatives

    d = synthetic_interactions((50, 40, 401), seed=0)
    shards = []
    for rank in range(2):
        es = UniformNegatives(d, 1, "bce", torch.device("cpu"), rank=rank, world=2)
        ep = es.epoch(torch.Generator().manual_seed(rank), torch.Generator().manual_seed(5))
        u, i, y = ep.u, ep.i, ep.target
        pos = set(zip(u[y == 1].tolist(), i[y == 1].tolist()))
        assert len(pos) == 200 and len(u) == 400  # 401 // 2 positives, one negative each
        shards.append(pos)
    assert not shards[0] & shards[1]
