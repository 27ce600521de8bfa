"""The checkerboard data and every model's test settings, shared by test_contract.py, test_model.py and test_baselines.py.

60 users and 30 items fall into 6 groups (10 users, 5 items each); every user interacted
with exactly the 5 items of their group. One in-group item per user is held out
(leave_one_out, random, seeded; no timestamps, so recency="auto" is off), so after
seen-item filtering the only in-group item left for a user is their held-out one, among
26 unseen items. See test_contract.py for why the thresholds are what they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ncf import split
from ncf.data.ids import IdMap
from ncf.data.interactions import Interactions

N_USERS, N_ITEMS, GROUPS = 60, 30, 6
UPG, IPG = N_USERS // GROUPS, N_ITEMS // GROUPS  # 10 users and 5 items per group
USER0, ITEM0 = 1000, 2000  # raw ids differ from indices, so index/raw mix-ups show


def checkerboard() -> Interactions:
    u = np.repeat(np.arange(N_USERS), IPG)
    i = (u // UPG) * IPG + np.tile(np.arange(IPG), N_USERS)
    users = IdMap(USER0 + np.arange(N_USERS), name="user")
    return Interactions.from_indices(users, IdMap(ITEM0 + np.arange(N_ITEMS), name="item"), u, i)


FULL = checkerboard()
TRAIN, TEST = split.leave_one_out(FULL, by="random", seed=0)

# One-stage NeuMF with light L2 (the pre-round-5 defaults) unless a spec says otherwise;
# "neumf-pretrain" covers the default pretraining. 4 negatives, fixed here so the tests do
# not follow the library's default.
BASE: dict[str, Any] = dict(
    factors=8,
    layers=(16, 8),
    negatives=4,
    batch_size=64,
    learning_rate=0.01,
    epochs=10,
    seed=0,
    device="cpu",
    pretrain=False,
    weight_decay=1e-4,
)
NCF_SPECS: dict[str, dict[str, Any]] = {
    "gmf": dict(BASE, model="gmf"),
    "mlp": dict(BASE, model="mlp", layers=(64, 32, 16, 8), epochs=12),  # a deeper MLP escapes the tiny init faster
    "neumf": dict(BASE, model="neumf"),
    "neumf-pretrain": dict(BASE, model="neumf", pretrain=True),
    "neumf-bpr": dict(BASE, model="neumf", loss="bpr"),
    # one logit per positive: more steps
    "neumf-softmax": dict(BASE, model="neumf", loss="softmax", negatives=8, learning_rate=0.03),
    "neumf-all-negatives": dict(BASE, model="neumf", negatives="all"),
}

# baseline name -> (make_baseline params, the optional module it needs): small, seeded, enough to learn
# the block structure of test_contract.py's checkerboard and test_baselines.py's block data.
BASELINE_SPECS: dict[str, tuple[dict[str, Any], str | None]] = {
    "popularity": ({}, None),
    "ease": ({"l2": 10.0}, None),
    "item-knn": ({"k_neighbors": 10}, None),
    "implicit-als": ({"factors": 8, "iterations": 15, "seed": 0}, "implicit"),
    "implicit-bpr": ({"factors": 8, "learning_rate": 0.05, "iterations": 100, "seed": 0}, "implicit"),
    "lightfm-warp": ({"no_components": 8, "epochs": 30, "seed": 0}, "lightfm"),
    "lightfm-bpr": ({"no_components": 8, "epochs": 100, "seed": 0}, "lightfm"),
}
