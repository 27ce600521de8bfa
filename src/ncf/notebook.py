"""The seed notebook, reproduced (``ncf benchmark --preset notebook``).

The notebook this project started from trained a small Keras NeuMF and LightFM on
MovieLens-100k and reported precision@5 / recall@5. This module redoes that setup as
faithfully as torch allows, and scores the result twice: the way the notebook did, and
the honest way. It is a reproduction of one specific Keras script, deliberately NOT
:class:`ncf.NCF` (which samples negatives, uses other sizes, early-stops on NDCG, ...).

The notebook's setup
--------------------
- Data and split: ML-100k as ``lightfm.datasets.fetch_movielens(min_rating=3.0)`` loads
  it: GroupLens' ``ua.base`` / ``ua.test`` (:func:`ncf.split.allbut`: each user's first 10
  ratings in ``u.data`` order are test ratings; 90,570 / 9,430 ratings), THEN ratings >= 3
  kept as positives: 74,627 train and 7,893 test positives, 1-10 test positives per user.
  The notebook's numbers pin this down: its Keras log counts 67,099 + 7,528 = 74,627
  training positives over 943 x 1,682 cells, its recall 0.06487 = 512 hits / 7,893, and
  the 10 x 10 corner of the training matrix it printed is this split's (the preset prints
  both side by side). The id maps keep all 943 users and 1,682 items.
- Training data: EVERY cell of the 943 x 1,682 training matrix, label 1 for a training
  positive, 0 otherwise (test positives are 0 there too), ordered as the notebook's
  ``wide_to_long`` listed them (the 0 cells row-major, then the 1 cells), shuffled once
  with ``DataFrame.sample(frac=1, random_state=seed)`` (= ``RandomState(seed).permutation``);
  the first ``round(0.1 n)`` shuffled cells are the validation part, the rest train, batched
  in that order every epoch (the notebook's ``make_tf_dataset``: a ``tf.data`` pipeline
  without ``shuffle``). With seed 42, the notebook's, these are its exact cells: 158,613
  validation cells with 7,528 positives, and 21 positives in the first batch, as its log
  shows (tp 1 + fn 20).
- Model (Keras functional NeuMF): GMF user/item embeddings of 4; MLP user/item embeddings
  of 32 each, concatenated to 64, then Dense(8, relu) and Dense(4, relu); the GMF product
  and the MLP output are concatenated into Dense(1, sigmoid). Embeddings start at
  N(0, 0.05) (Keras ``RandomNormal`` default), dense kernels Glorot-uniform, biases 0
  (Keras defaults), except the output layer's kernel: LeCun-uniform, as the notebook set it.
- Regularisation, as Keras adds it to the loss every step:
  ``embeddings_regularizer=l2(0.01)`` on the two MLP embeddings adds
  ``0.01 * sum(W**2)`` over the WHOLE matrix (every row, not only the batch's);
  ``activity_regularizer=l2(0.01)`` on the two hidden Dense layers adds
  ``0.01 * sum(out**2) / batch_size`` (TF2 Keras divides activity losses by the batch
  size). The validation loss includes both, like Keras's ``val_loss``.
- Loss: binary cross-entropy, mean over the batch (from logits; Keras also uses the
  logits when the output is a sigmoid). Optimiser: Adam, lr 1e-3, betas (0.9, 0.999),
  eps 1e-7 (Keras defaults; Keras applies eps before the bias correction, torch after,
  a negligible difference). Batch 512.
- Up to 10 epochs, ``EarlyStopping(monitor="val_loss", patience=0)``: training stops
  after the first epoch whose validation loss is not below the best so far, and since
  ``restore_best_weights=False`` that LAST epoch's weights are kept.
- LightFM: ``LightFM(loss="warp")`` with its defaults (10 components, lr 0.05) for
  10 epochs on the training positives (skipped, with the install command, if lightfm is
  missing).

What cannot be reproduced is TensorFlow's random stream: the initial weights differ from
the notebook's, so the metrics move with the seed (see benchmarks/RESULTS.md for a spread).

The two ways of scoring
-----------------------
- ``notebook``: like ``tf.keras.metrics.Precision(top_k=5)`` / ``Recall(top_k=5)`` on the
  943 x 1,682 score matrix against the 0/1 test matrix: every user row (users without test
  items too) contributes its top 5 of ALL items, seen training items left in;
  precision = hits / (5 * 943), recall = hits / #test positives (micro-averaged). See
  :func:`notebook_precision_recall`.
- ``honest``: :func:`ncf.evaluate` with protocol ``"full"``: seen items excluded, metrics
  per user, averaged over users with test items.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from ncf.base import Recommender
from ncf.checks import check_int
from ncf.data.interactions import Interactions
from ncf.errors import ConfigError
from ncf.reports import write_json, write_text

#: What the notebook printed (precision@5, recall@5 its way).
NOTEBOOK_REPORTED: dict[str, dict[str, float]] = {
    "NeuMF": {"precision@5": 0.10859, "recall@5": 0.06487},
    "LightFM (WARP)": {"precision@5": 0.10541, "recall@5": 0.06297},
}

#: The notebook's data, as its outputs show it: training / test positives, the validation
#: part of its cells (Keras log: val tp + fn) and the training positives in the other cells.
NOTEBOOK_COUNTS: dict[str, int] = {
    "train_positives": 74_627,
    "test_positives": 7_893,
    "validation_cells": 158_613,
    "validation_positives": 7_528,
    "train_cell_positives": 67_099,
}
#: The top-left 10 x 10 of the notebook's training matrix as it printed it (ratings, before
#: binarising; 0 = no rating >= 3 in train).
NOTEBOOK_CORNER: tuple[tuple[int, ...], ...] = (
    (5, 3, 4, 3, 3, 5, 4, 0, 5, 3),
    (4, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    (0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    (0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    (0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    (4, 0, 0, 0, 0, 0, 0, 4, 4, 0),
    (0, 0, 0, 5, 0, 0, 5, 5, 5, 4),
    (0, 0, 0, 0, 0, 0, 3, 0, 0, 0),
    (0, 0, 0, 0, 0, 0, 4, 0, 0, 0),
    (4, 0, 0, 4, 0, 0, 0, 0, 4, 0),
)

MIN_RATING = 3.0
TEST_PER_USER = 10
SPLIT_PART = "a"
GMF_DIM = 4
MLP_DIM = 32
LAYERS = (8, 4)
EMBED_STD = 0.05
L2_EMBEDDING = 0.01
L2_ACTIVITY = 0.01
LEARNING_RATE = 1e-3
BATCH_SIZE = 512
VALIDATION_SPLIT = 0.1
TOP_K = 5

Progress = Callable[[str], Any]


# -- data ----------------------------------------------------------------------------------------
def load_notebook_data() -> Interactions:
    """All 100,000 ML-100k ratings in ``u.data`` order (943 users, 1,682 items), not yet split."""
    from ncf.data.movielens import movielens_100k

    return movielens_100k()


def notebook_split(data: Interactions) -> tuple[Interactions, Interactions]:
    """The notebook's (train, test) positives: GroupLens' ``ua`` split, then ratings >= 3.

    ``data`` holds every rating with its file order (:func:`load_notebook_data`). The split
    report of both parts is :func:`ncf.split.allbut`'s (it counts ratings, not positives).
    """
    from ncf import split

    if data.ratings is None:
        raise ConfigError("notebook_split needs ratings (positives are ratings >= 3); load ML-100k with its ratings")
    train, test = split.allbut(data, TEST_PER_USER, part=SPLIT_PART)
    return tuple(  # type: ignore[return-value]
        part._subset(part.ratings >= MIN_RATING, min_rating=MIN_RATING, split=part.report["split"])
        for part in (train, test)
    )


def train_corner(train: Interactions, size: int = 10) -> np.ndarray:
    """The top-left ``size`` x ``size`` of the training matrix with ratings (0 = not a training positive)."""
    out = np.zeros((size, size), dtype=np.int64)
    keep = (train.user_idx < size) & (train.item_idx < size)
    values = np.ones(len(train)) if train.ratings is None else train.ratings
    out[train.user_idx[keep], train.item_idx[keep]] = np.rint(values[keep]).astype(np.int64)
    return out


def format_corner(ours: np.ndarray) -> str:
    """The notebook's printed corner and ours side by side, and whether they agree."""
    theirs = np.asarray(NOTEBOOK_CORNER)
    head = "notebook's printed train[:10, :10]"
    rows = [f"  {head:<36}ours"]
    for a, b in zip(theirs, ours):
        rows.append(f"  {' '.join(str(v) for v in a):<36}{' '.join(str(v) for v in b)}")
    same = ours.shape == theirs.shape and bool((ours == theirs).all())
    rows.append(f"  identical: {'yes' if same else 'NO'}")
    return "\n".join(rows)


def notebook_cells(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train cells, validation cells) as flat indices, in the notebook's ``make_tf_dataset`` order.

    ``labels`` is the flattened 0/1 training matrix. The notebook listed the cells with
    ``wide_to_long`` (every 0 cell row-major, then every 1 cell), shuffled them once with
    ``df.sample(frac=1, random_state=seed)`` (pandas draws ``RandomState(seed).permutation``),
    took the first ``round(0.1 * n)`` as validation and batched the rest in order.
    """
    labels = np.asarray(labels)
    listed = np.concatenate([np.flatnonzero(labels == 0), np.flatnonzero(labels != 0)])
    shuffled = listed[np.random.RandomState(seed).permutation(len(listed))]
    n_val = round(len(listed) * VALIDATION_SPLIT)
    return shuffled[n_val:], shuffled[:n_val]


# -- the metric --------------------------------------------------------------------------------
def notebook_precision_recall(
    scores: np.ndarray | torch.Tensor, relevant: sp.spmatrix | np.ndarray, k: int = TOP_K
) -> tuple[float, float]:
    """Micro precision@k / recall@k as ``tf.keras.metrics.Precision(top_k=k)`` computes them.

    ``scores`` is a (users x items) score matrix, ``relevant`` the 0/1 test matrix of the
    same shape. Every row counts (rows without relevant items too) and nothing is masked:
    each row's ``k`` highest-scored items (ties: lower index first, like ``tf.math.top_k``)
    are its predicted positives. precision = hits / (k * rows), recall = hits / relevant.
    """
    from ncf.metrics import micro_precision_recall
    from ncf.ranking import topk_rows

    s = torch.as_tensor(np.asarray(scores) if not isinstance(scores, torch.Tensor) else scores).float()
    rel = relevant.toarray() if sp.issparse(relevant) else np.asarray(relevant)
    rel = rel > 0
    if s.ndim != 2 or s.shape != rel.shape:
        raise ConfigError(f"scores {tuple(s.shape)} and relevant {rel.shape} must be matrices of the same shape")
    if not 1 <= k <= s.shape[1]:
        raise ConfigError(f"k == {k}, must be in [1, {s.shape[1]}]")
    _, idx = topk_rows(s, k)
    hits = int(np.take_along_axis(rel, idx.numpy(), axis=1).sum())
    return micro_precision_recall(hits, k * s.shape[0], int(rel.sum()))


# -- the Keras model ---------------------------------------------------------------------------
class KerasNeuMF(nn.Module):
    """The notebook's Keras NeuMF in torch: GMF(4) + MLP(32+32 -> 8 -> 4) -> Dense(1)."""

    def __init__(self, n_users: int, n_items: int) -> None:
        super().__init__()
        self.gmf_user = nn.Embedding(n_users, GMF_DIM)
        self.gmf_item = nn.Embedding(n_items, GMF_DIM)
        self.mlp_user = nn.Embedding(n_users, MLP_DIM)
        self.mlp_item = nn.Embedding(n_items, MLP_DIM)
        dims = (2 * MLP_DIM, *LAYERS)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.out = nn.Linear(GMF_DIM + LAYERS[-1], 1)
        for emb in (self.gmf_user, self.gmf_item, self.mlp_user, self.mlp_item):
            nn.init.normal_(emb.weight, 0.0, EMBED_STD)
        for lin in self.hidden:  # Keras Dense default: Glorot-uniform
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        # The notebook's output layer: kernel_initializer="lecun_uniform", U(+-sqrt(3 / fan_in)).
        bound = math.sqrt(3.0 / self.out.in_features)
        nn.init.uniform_(self.out.weight, -bound, bound)
        nn.init.zeros_(self.out.bias)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, sum over hidden layers of sum(out**2)) for a batch of pairs."""
        gmf = self.gmf_user(users) * self.gmf_item(items)
        h = torch.cat([self.mlp_user(users), self.mlp_item(items)], dim=1)
        activity = h.new_zeros(())
        for lin in self.hidden:
            h = F.relu(lin(h))
            activity = activity + h.pow(2).sum()
        return self.out(torch.cat([gmf, h], dim=1)).squeeze(1), activity

    def weight_penalty(self) -> torch.Tensor:
        """sum(W**2) of both MLP embedding matrices, every row (Keras embeddings_regularizer)."""
        return self.mlp_user.weight.pow(2).sum() + self.mlp_item.weight.pow(2).sum()

    @torch.no_grad()
    def score_matrix(self, n_users: int, n_items: int, chunk: int = 256) -> torch.Tensor:
        """Sigmoid outputs for every (user, item): (n_users, n_items)."""
        out = torch.empty(n_users, n_items)
        items = torch.arange(n_items)
        for s in range(0, n_users, chunk):
            users = torch.arange(s, min(s + chunk, n_users))
            logits, _ = self(users.repeat_interleave(n_items), items.repeat(len(users)))
            out[s : s + len(users)] = torch.sigmoid(logits).view(len(users), n_items)
        return out


def _batch_loss(module: KerasNeuMF, u: torch.Tensor, i: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits, activity = module(u, i)
    bce = F.binary_cross_entropy_with_logits(logits, y)
    return bce + L2_EMBEDDING * module.weight_penalty() + L2_ACTIVITY * activity / len(u)


@torch.no_grad()
def _validation_loss(module: KerasNeuMF, u: torch.Tensor, i: torch.Tensor, y: torch.Tensor) -> float:
    """Keras's val_loss: batch-size-weighted mean of the per-batch loss, regularisers included."""
    bce_sum = 0.0
    act_sum = 0.0
    for s in range(0, len(u), 1 << 16):
        logits, activity = module(u[s : s + (1 << 16)], i[s : s + (1 << 16)])
        bce_sum += float(F.binary_cross_entropy_with_logits(logits, y[s : s + (1 << 16)], reduction="sum"))
        act_sum += float(activity)
    n = max(1, len(u))
    return bce_sum / n + L2_EMBEDDING * float(module.weight_penalty()) + L2_ACTIVITY * act_sum / n


def train_keras_neumf(
    train: Interactions,
    *,
    epochs: int = 10,
    batch_size: int = BATCH_SIZE,
    seed: int = 42,
    progress: Progress | None = print,
) -> tuple[KerasNeuMF, dict[str, Any]]:
    """Train :class:`KerasNeuMF` on every cell of ``train``'s user x item matrix (see module notes)."""
    say = progress or (lambda _m: None)
    n_users, n_items = train.shape
    n = n_users * n_items
    flat = np.zeros(n, dtype=np.int8)
    flat[train.user_idx * n_items + train.item_idx] = 1
    labels = torch.as_tensor(flat, dtype=torch.float32)
    tr_cells, va_cells = notebook_cells(flat, seed)
    tr, va = torch.as_tensor(tr_cells), torch.as_tensor(va_cells)
    tu, ti, ty = tr // n_items, tr % n_items, labels[tr]
    vu, vi, vy = va // n_items, va % n_items, labels[va]
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = KerasNeuMF(n_users, n_items)
        opt = torch.optim.Adam(module.parameters(), lr=LEARNING_RATE, betas=(0.9, 0.999), eps=1e-7)
        best = math.inf
        stopped_early = False
        for epoch in range(1, epochs + 1):
            te = time.perf_counter()
            module.train()
            total = 0.0
            # The same batches in the same order every epoch, like the notebook's unshuffled tf.data.
            for bu, bi, by in zip(tu.split(batch_size), ti.split(batch_size), ty.split(batch_size)):
                loss = _batch_loss(module, bu, bi, by)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(bu)
            module.eval()
            val_loss = _validation_loss(module, vu, vi, vy)
            rec = {
                "epoch": epoch,
                "loss": total / max(1, len(tr)),
                "val_loss": val_loss,
                "seconds": time.perf_counter() - te,
            }
            history.append(rec)
            say(
                f"  NeuMF epoch {epoch}/{epochs}: loss {rec['loss']:.5f}  val_loss {val_loss:.5f}  "
                f"({rec['seconds']:.1f}s)"
            )
            if not math.isfinite(val_loss):
                break
            if val_loss < best:
                best = val_loss
            else:  # EarlyStopping(patience=0), restore_best_weights=False: keep this epoch's weights
                stopped_early = True
                break
    info = {
        "history": history,
        "epochs_run": len(history),
        "stopped_early": stopped_early,
        "fit_seconds": time.perf_counter() - t0,
        "train_cells": int(len(tr)),
        "validation_cells": int(len(va)),
        "positives_in_train_cells": int(ty.sum()),
        "positives_in_validation_cells": int(labels[va].sum()),
    }
    return module.eval(), info


class FixedScores(Recommender):
    """A fitted-looking Recommender over a fixed (users x items) score matrix, for ncf.evaluate."""

    name = "fixed-scores"

    def __init__(self, scores: torch.Tensor, train: Interactions) -> None:
        self.scores_ = torch.as_tensor(scores).float()
        self.train_ = train

    def score_block(self, users: torch.Tensor) -> torch.Tensor:
        return self.scores_[users]


# -- the run -------------------------------------------------------------------------------------
NOTEBOOK_DEF = (
    "notebook's way: top-5 of ALL items per user row (seen items left in), all users' rows, micro-averaged "
    "like tf.keras.metrics.Precision/Recall(top_k=5)"
)
HONEST_DEF = "honest: ncf.evaluate(protocol='full'): seen items excluded, per-user mean over users with test items"


def _score_both(scores: torch.Tensor, train: Interactions, test: Interactions) -> dict[str, Any]:
    from ncf.evaluation import evaluate

    p, r = notebook_precision_recall(scores, test.csr, TOP_K)
    honest = evaluate(FixedScores(scores, train), test, k=[5, 10], protocol="full")
    return {
        "notebook": {"precision@5": p, "recall@5": r, "definition": NOTEBOOK_DEF},
        "honest": {
            **{k: v for k, v in honest.items() if k != "protocol"},
            "protocol": "full",
            "definition": HONEST_DEF,
        },
    }


def split_summary(split_info: dict[str, Any]) -> str:
    """One line: the split's positives next to the notebook's, and whether the printed corner matches."""
    nb = split_info["notebook"]
    return (
        f"split: {split_info['protocol']}: {split_info['train']:,} train / {split_info['test']:,} test positives "
        f"(the notebook: {nb['train']:,} / {nb['test']:,}); train[:10, :10] matches the notebook's printout: "
        f"{'yes' if split_info['corner_matches_notebook'] else 'NO'}"
    )


def format_table(models: dict[str, dict[str, Any]]) -> str:
    """Side-by-side: what the notebook reported, our run scored its way, our run scored honestly."""
    head = (
        "model",
        "reported P@5",
        "reported R@5",
        "notebook-way P@5",
        "notebook-way R@5",
        "honest P@5",
        "honest R@5",
        "honest NDCG@10",
    )
    rows = []
    for name, res in models.items():
        rep = NOTEBOOK_REPORTED.get(name, {})
        if "skipped" in res:
            rows.append((name, *(f"{rep[k]:.5f}" for k in ("precision@5", "recall@5")), f"skipped: {res['skipped']}"))
            continue
        nb, hn = res["notebook"], res["honest"]
        rows.append(
            (
                name,
                f"{rep.get('precision@5', float('nan')):.5f}",
                f"{rep.get('recall@5', float('nan')):.5f}",
                f"{nb['precision@5']:.5f}",
                f"{nb['recall@5']:.5f}",
                f"{hn['precision@5']:.5f}",
                f"{hn['recall@5']:.5f}",
                f"{hn['ndcg@10']:.5f}",
            )
        )
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def run_notebook(
    seed: int = 42,
    epochs: int = 10,
    out_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = print,
    *,
    batch_size: int = BATCH_SIZE,
) -> dict[str, Any]:
    """Reproduce the seed notebook; returns (and with ``out_dir`` writes) both metric variants.

    The split is fixed (GroupLens' ``ua``, ratings >= 3 after it; see the module notes).
    ``seed`` drives the validation cells (42, the notebook's, gives its exact cells), the
    initialisation and LightFM's seed; ``epochs`` is NeuMF's maximum and LightFM's count
    (10 in the notebook); ``batch_size`` 512 as in the notebook (larger only to test quickly).
    """
    check_int("seed", seed, 0)
    check_int("epochs", epochs)
    check_int("batch_size", batch_size)
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    data = load_notebook_data()
    train, test = notebook_split(data)
    sp_rep = train.report.get("split") or {}
    per_user = test.user_counts[test.user_counts > 0]
    corner = train_corner(train)
    split_info = {
        "protocol": f"GroupLens u{SPLIT_PART} (ncf.split.allbut, n={TEST_PER_USER}), then ratings >= {MIN_RATING:g}",
        "users": data.n_users,
        "items": data.n_items,
        "ratings": len(data),
        "train_ratings": sp_rep.get("train_interactions"),
        "test_ratings": sp_rep.get("test_interactions"),
        "train": len(train),
        "test": len(test),
        "users_with_test": int(len(per_user)),
        "test_per_user_min": int(per_user.min()) if len(per_user) else 0,
        "test_per_user_max": int(per_user.max()) if len(per_user) else 0,
        "notebook": {"train": NOTEBOOK_COUNTS["train_positives"], "test": NOTEBOOK_COUNTS["test_positives"]},
        "corner": corner.tolist(),
        "corner_matches_notebook": bool((corner == np.asarray(NOTEBOOK_CORNER)).all()),
    }
    say(
        f"notebook setup: {data.n_users:,} users x {data.n_items:,} items, {len(data):,} ratings; GroupLens' "
        f"u{SPLIT_PART} split (each user's first {TEST_PER_USER} ratings in file order are test ratings): "
        f"{split_info['train_ratings']:,} train / {split_info['test_ratings']:,} test ratings; then ratings >= "
        f"{MIN_RATING:g} are the positives:"
    )
    say(f"  train positives {len(train):>7,}   (notebook: {NOTEBOOK_COUNTS['train_positives']:,})")
    say(
        f"  test positives  {len(test):>7,}   (notebook: {NOTEBOOK_COUNTS['test_positives']:,}); "
        f"{len(per_user)} users with {split_info['test_per_user_min']}-{split_info['test_per_user_max']} each"
    )
    say(format_corner(corner))
    models: dict[str, dict[str, Any]] = {}

    say(
        f"training the Keras-equivalent NeuMF on all {data.n_users * data.n_items} cells "
        f"(batch {batch_size}, up to {epochs} epochs, early stopping on val_loss, patience 0) ..."
    )
    module, info = train_keras_neumf(train, epochs=epochs, batch_size=batch_size, seed=seed, progress=say)
    say(
        f"  cells: {info['validation_cells']:,} validation with {info['positives_in_validation_cells']:,} positives, "
        f"{info['train_cells']:,} training with {info['positives_in_train_cells']:,} (notebook's Keras log: "
        f"{NOTEBOOK_COUNTS['validation_cells']:,} with {NOTEBOOK_COUNTS['validation_positives']:,}, "
        f"{NOTEBOOK_COUNTS['train_cell_positives']:,} positives in training)"
    )
    scores = module.score_matrix(*train.shape)
    models["NeuMF"] = {**_score_both(scores, train, test), **info}

    say(f"training LightFM (loss='warp', defaults) for {epochs} epochs ...")
    try:
        from ncf.baselines import make_baseline

        lfm = make_baseline("lightfm-warp", epochs=epochs, seed=seed)
    except ConfigError as e:  # lightfm missing: the message is the install command
        say(f"  LightFM skipped: {e}; then rerun this preset for its row")
        models["LightFM (WARP)"] = {"skipped": str(e)}
    else:
        tl = time.perf_counter()
        lfm.fit(train)
        fit_s = time.perf_counter() - tl
        with torch.inference_mode():
            lscores = lfm.score_block(torch.arange(train.n_users)).float().clone()
        models["LightFM (WARP)"] = {
            **_score_both(lscores, train, test),
            "fit_seconds": fit_s,
            "params": lfm.get_params(),
        }

    table = format_table(models)
    result = {
        "setup": {
            "seed": seed,
            "epochs": epochs,
            "batch_size": batch_size,
            "min_rating": MIN_RATING,
            "test_per_user": TEST_PER_USER,
            "split": f"allbut part {SPLIT_PART!r}, then min_rating",
            "gmf_dim": GMF_DIM,
            "mlp_dim": MLP_DIM,
            "layers": list(LAYERS),
            "embedding_init_std": EMBED_STD,
            "l2_embedding": L2_EMBEDDING,
            "l2_activity": L2_ACTIVITY,
            "learning_rate": LEARNING_RATE,
            "validation_split": VALIDATION_SPLIT,
            "negatives": "all unobserved cells",
        },
        "split": split_info,
        "reported": NOTEBOOK_REPORTED,
        "definitions": {"notebook": NOTEBOOK_DEF, "honest": HONEST_DEF},
        "models": models,
        "table": table,
        "seconds": time.perf_counter() - t0,
    }
    summary = split_summary(split_info)
    say("")
    say(table)
    say("")
    say(f"{NOTEBOOK_DEF}.")
    say(f"{HONEST_DEF}.")
    say(summary)
    if "skipped" in models["LightFM (WARP)"]:
        say(f"LightFM was skipped: {models['LightFM (WARP)']['skipped']}")
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "notebook.json", result)
        md = [
            "# Seed notebook, reproduced",
            "",
            table,
            "",
            f"- {NOTEBOOK_DEF}",
            f"- {HONEST_DEF}",
            f"- {summary}",
            "",
            "```",
            format_corner(corner),
            "```",
            "",
            "```json",
            json.dumps(result["setup"], indent=2),
            "```",
            "",
        ]
        write_text(out / "notebook.md", "\n".join(md))
        result["files"] = {"json": str(out / "notebook.json"), "markdown": str(out / "notebook.md")}
    return result
