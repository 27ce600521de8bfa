"""Pick the model to ship: fit the candidates that fit a time budget, choose on validation, refit the winner.

:func:`select_model` carves a validation part out of ``train`` by the rule that made
``train`` (:func:`ncf.split.validation_rule`: one latest item per user for leave-one-out
by time, n random items per user for a random holdout), fits every candidate on the rest
(each model's own early stopping, if any, works inside that part: the validation part is
seen by no fit), scores each on the validation part with the same full-ranking metric, and
refits the best on all of ``train``. The test part, if the caller has one, is never seen.

With ``folds > 1`` each candidate is fitted and scored ``folds`` times and chosen on its mean:
on a random holdout each fold carves its own random validation part (seeds ``seed``,
``seed + 1``, ...); under a time rule the folds roll back in time (fold 2 validates on the
items just before fold 1's, trained on what precedes them). Each fold also fits with its own
seed, so a model whose score depends on its training seed is judged on an average, not on one
draw. On ML-100k one validation part cannot separate the strong candidates: their differences
are about one standard error of a single split (benchmarks/RESULTS.md, "--model auto with folds").

The blend stage (``blend=True``, the default) then weighs the best three candidates together
(:class:`ncf.blend.Blend`: per-user standardised scores, weights on a simplex grid of step 0.1,
scored on the same validation parts) and ships that blend only when it beats the best single
candidate by more than one standard error of their per-user difference on validation: the
one-standard-error rule, so a blend is not chosen on a gain that one validation part cannot
resolve. On ML-100k a blend of NeuMF with EASE and ALS wins that way on the random holdout, where
the single models are within 1 % of one another (benchmarks/RESULTS.md, "Session 9").

The result is one ordinary model (an :class:`ncf.NCF`, a baseline or a :class:`ncf.blend.Blend`)
whose ``leaderboard_`` lists every candidate (its validation metric and fit time, or why it was
skipped) and the blend stage's row. Bundles keep the leaderboard, and ``ncf evaluate`` and
``GET /v1/model`` show it.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ncf import split
from ncf.base import Recommender
from ncf.blend import Blend
from ncf.checks import check_int
from ncf.data.interactions import Interactions
from ncf.errors import ConfigError, DataError
from ncf.evaluation import evaluate, full_ranking_ranks
from ncf.metrics import CUTOFF_METRICS, parse_metric, per_user
from ncf.registry import check_models, make_model

__all__ = ["DEFAULT_CANDIDATES", "select_model"]

#: Tried in this order (cheapest first), so a small budget still gets the fast ones. One NCF model:
#: NeuMF holds a GMF tower, and both carry the same item-item term, so GMF is a near-duplicate
#: candidate; on ML-100k leave-one-out their validation scores swapped order from seed to seed
#: (benchmarks/RESULTS.md, "--model auto"), and choosing between near-equals on a noisy score
#: only adds noise. Name them in ``candidates`` to try them all.
DEFAULT_CANDIDATES = ("popularity", "ease", "item-knn", "implicit-als", "lightfm-warp", "implicit-bpr", "neumf")

#: Rough fit seconds per 100k interactions on a 2-core CPU (ML-100k, benchmarks/RESULTS.md), used only to
#: skip a candidate that cannot finish in what is left of the budget. EASE also grows with items^3.
COST_PER_100K = {
    "popularity": 0.01,
    "ease": 0.5,
    "item-knn": 0.3,
    "implicit-als": 1.0,
    "implicit-bpr": 1.5,
    "lightfm-warp": 3.0,
    "lightfm-bpr": 3.0,
    "gmf": 3.5,
    "mlp": 3.5,
    "neumf": 4.0,
}


def _estimate(name: str, train: Interactions) -> float:
    est = COST_PER_100K.get(name, 5.0) * len(train) / 1e5
    if name == "ease":
        est *= max(1.0, (train.n_items / 1682) ** 3)
    return est


#: At most this many validation folds (each costs every candidate one more fit).
MAX_FOLDS = 10


def _validation_parts(train: Interactions, folds: int, seed: int) -> list[tuple[Interactions, Interactions]]:
    """``folds`` (inner, validation) pairs carved by ``train``'s own rule: random parts with
    seeds ``seed + j``, or, under a time rule, each fold carved from the previous fold's inner part."""
    how, n, fraction = split.validation_rule(train)
    parts: list[tuple[Interactions, Interactions]] = []
    rest = train
    for j in range(folds):
        source = train if how == "random" else rest
        inner, val = split.carve_validation(source, how, n=n, fraction=fraction, seed=seed + j)
        if len(val) == 0:
            if j == 0:
                raise DataError(
                    "train is too small to hold out a validation part (every user has a single interaction)"
                )
            raise DataError(
                f"folds == {folds}: train holds only {j} validation part(s) by its time rule "
                f"(each fold needs users with more interactions before it); use folds <= {j}"
            )
        parts.append((inner, val))
        rest = inner
    return parts


def select_model(
    train: Interactions,
    *,
    budget: float,
    candidates: Sequence[str] = DEFAULT_CANDIDATES,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    metric: str = "ndcg@10",
    seed: int = 0,
    folds: int = 1,
    blend: bool = True,
) -> Recommender:
    """The best of ``candidates`` on validation, refit on all of ``train``; see the module notes.

    ``budget`` (seconds) bounds the candidates' fits on the inner parts; the blend stage (scoring
    66 weightings of the kept validation scores: ~0.5 s on ML-100k) and the winner's refit come on
    top. ``params`` maps a candidate name to its hyper-parameters. ``folds`` (1-10): validation
    parts each candidate is scored on (the mean decides). ``blend``: also try a blend of
    the best three (:class:`ncf.blend.Blend`, weights on a 0.1 grid, chosen on the same validation
    parts) and ship it when it beats the best single candidate by more than one standard error of
    their per-user difference. Raises ConfigError when the budget is too small for any candidate.
    """
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
        raise ConfigError(f"budget == {budget!r}, must be a number of seconds > 0")
    folds = check_int("folds", folds, 1, maximum=MAX_FOLDS)
    names = check_models(list(candidates))
    base, k, key = parse_metric(metric)
    params = {check_models([n])[0]: dict(p) for n, p in (params or {}).items()}
    parts = _validation_parts(train, folds, seed)
    pool = _BlendPool(parts, metric, BLEND_TOP if blend else 0)
    board: list[dict[str, Any]] = []
    start = time.perf_counter()
    deadline = start + budget
    for name in names:
        left = budget - (time.perf_counter() - start)
        est = sum(_estimate(name, inner) for inner, _ in parts)  # one fit per fold
        row: dict[str, Any] = {"model": name, "params": params.get(name, {})}
        if est > left:
            board.append({**row, "status": f"skipped: needs ~{est:.1f} s, {max(left, 0):.1f} s of the budget left"})
            continue
        try:
            scores, fit_s, fitted = [], 0.0, []
            for j, (inner, val) in enumerate(parts):
                model = make_model(name, params.get(name), seed + j)
                if hasattr(model, "callbacks"):  # NCF: stop training (keeping the best epoch) when the budget is spent
                    model.callbacks = (*model.callbacks, lambda epoch, logs: time.perf_counter() > deadline)
                t0 = time.perf_counter()
                model.fit(inner)
                fit_s += time.perf_counter() - t0
                scores.append(float(evaluate(model, val, k=k, metrics=[base])[key]))
                fitted.append(model)
        except ConfigError as e:  # e.g. an optional library is missing: say so, try the others
            board.append({**row, "status": f"skipped: {e}"})
            continue
        status = "ok" if time.perf_counter() <= deadline else "ok (training stopped when the budget ran out)"
        row.update(status=status, **{f"val_{metric}": sum(scores) / folds}, fit_seconds=round(fit_s / folds, 3))
        if folds > 1:
            row[f"val_{metric}_folds"] = scores
        board.append(row)
        pool.offer(name, sum(scores) / folds, fitted)
    done = [r for r in board if r["status"].startswith("ok")]
    if not done:
        need = {m: sum(_estimate(m, inner) for inner, _ in parts) for m in names}
        cheapest = min(names, key=need.__getitem__)
        raise ConfigError(
            f"budget == {budget} s fits none of the candidates ({', '.join(names)}) on {len(train)} interactions; "
            f"give a larger budget (the cheapest, {cheapest}, needs about {max(need[cheapest], 0.1):.1f} s"
            + (f" for {folds} folds)" if folds > 1 else ")")
        )
    best = max(done, key=lambda r: r[f"val_{metric}"])
    mix = pool.choose() if blend else None
    if mix is not None:
        board.append(mix.row(metric, {r["model"]: r for r in done}))
    if mix is not None and mix.adopted:
        board[-1]["chosen"] = True
        winner: Recommender = Blend(
            [(n, make_model(n, params.get(n), seed)) for n in mix.names], list(mix.weights)
        ).fit(train)
        winner.validation_ = {"chosen_on": "validation", f"validation_{metric}": board[-1][f"val_{metric}"]}
    else:
        best["chosen"] = True
        winner = make_model(best["model"], params.get(best["model"]), seed).fit(train)
    winner.leaderboard_ = board
    return winner


#: The blend stage: the best this many candidates on validation (ncf.blend.Blend), weighted on a simplex grid.
BLEND_TOP = 3
#: The grid's step: weights are multiples of it (66 points for three candidates).
BLEND_STEP = 0.1
#: Memory for the candidates' standardised validation scores the blend stage keeps (BLEND_TOP + 1 at a
#: time). Past it, the weights are chosen on a random sample of the validation users (said in the row).
BLEND_MEMORY = 256 << 20


@dataclasses.dataclass
class _Mix:
    names: list[str]
    weights: list[float]
    mean: float  # the blend's validation metric, over the (sampled) validation users of every fold
    best: str  # the best single candidate
    best_mean: float  # its metric on the same users
    se: float  # standard error of the per-user difference blend - best
    users: int
    sampled: bool
    folds: list[float] = dataclasses.field(default_factory=list)  # the blend's metric on each fold

    @property
    def adopted(self) -> bool:
        """Shipped only when it beats the best single candidate by more than one standard error of
        their per-user difference on validation (the one-standard-error rule: the simpler model
        unless the richer one is clearly better); a blend of one is the best candidate itself."""
        return len(self.names) > 1 and self.mean - self.best_mean > self.se

    def row(self, metric: str, rows: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        gain = self.mean - self.best_mean
        if len(self.names) == 1:
            why = "not chosen: the best weights on validation give the best candidate alone"
        elif self.adopted:
            why = f"ok: beats {self.best} by {gain:+.5f} on validation, more than one standard error ({self.se:.5f})"
        else:
            why = (
                f"not chosen: beats {self.best} by {gain:+.5f} on validation, within one standard error ({self.se:.5f})"
            )
        return {
            "model": "blend",
            "params": {"components": dict(zip(self.names, self.weights))},
            "status": why,
            f"val_{metric}": self.mean,
            **({f"val_{metric}_folds": self.folds} if len(self.folds) > 1 else {}),
            f"val_{metric}_best_single_same_users": self.best_mean,
            "standard_error": self.se,
            "validation_users": self.users,
            **({"validation_users_sampled": True} if self.sampled else {}),
            "fit_seconds": round(sum(rows[n]["fit_seconds"] for n in self.names), 3),
        }


class _BlendPool:
    """The best ``top`` candidates' standardised scores on each fold's validation users, and the
    blend of them that validates best (:meth:`choose`)."""

    def __init__(self, parts: list[tuple[Interactions, Interactions]], metric: str, top: int) -> None:
        self.parts, self.top = parts, top
        self.base, self.k, _ = parse_metric(metric)
        self.kept: list[tuple[float, str, list[torch.Tensor]]] = []  # the best ``top``: (score, name, z per fold)
        self.users: list[np.ndarray] = []
        self.sampled = False
        for j, (inner, val) in enumerate(parts):
            users = np.flatnonzero(np.diff(val.csr.indptr) > 0)
            room = max(1, BLEND_MEMORY // max(1, inner.n_items * 4 * (top + 1) * len(parts)))
            if len(users) > room:
                users = np.sort(np.random.default_rng(j).choice(users, room, replace=False))
                self.sampled = True
            self.users.append(users)

    def offer(self, name: str, score: float, fitted: list[Recommender]) -> None:
        if self.top == 0:
            return
        if len(self.kept) == self.top and score <= self.kept[-1][0]:
            return
        from ncf.item_item import standardise

        z = []
        with torch.inference_mode():
            for m, users in zip(fitted, self.users):
                z.append(standardise(m.score_block(torch.as_tensor(users)).float()).cpu())
        self.kept = sorted([*self.kept, (score, name, z)], key=lambda t: -t[0])[: self.top]

    def _per_user(self, weights: Sequence[float]) -> list[np.ndarray]:
        """Per-user validation metric of the weighted blend, one array per fold."""
        out = []
        for j, ((inner, val), users) in enumerate(zip(self.parts, self.users)):
            fixed = sum(w * z[j] for w, (_, _, z) in zip(weights, self.kept) if w > 0)
            pos = np.full(inner.n_users, -1, dtype=np.int64)
            pos[users] = np.arange(len(users))

            def score(batch: torch.Tensor, fixed: torch.Tensor = fixed, pos: np.ndarray = pos) -> torch.Tensor:
                return fixed[torch.as_tensor(pos[batch.cpu().numpy()])]

            _, ranks, indptr, n_cand, _ = full_ranking_ranks(
                score, val.csr, inner.csr, users=users, cutoff=self.k if self.base in CUTOFF_METRICS else None
            )
            out.append(per_user(self.base, ranks, indptr, n_cand, self.k))
        return out

    def choose(self) -> _Mix | None:
        """The blend of the kept candidates that validates best (on the grid), with the rule's inputs."""
        n = len(self.kept)
        if n == 0:
            return None
        steps = round(1 / BLEND_STEP)
        # every weight vector on the grid, the best candidate's largest weights first (ties keep the simpler)
        grid = sorted((c for c in itertools.product(range(steps, -1, -1), repeat=n) if sum(c) == steps), reverse=True)

        def mean(folds: list[np.ndarray]) -> float:  # the mean over folds of each fold's mean, as for a candidate
            return float(np.mean([f.mean() for f in folds]))

        single = self._per_user([1.0] + [0.0] * (n - 1))
        best_w, best_pu = grid[0], single
        for c in grid[1:]:
            pu = self._per_user([x / steps for x in c])
            if mean(pu) > mean(best_pu):
                best_w, best_pu = c, pu
        d = np.concatenate(best_pu) - np.concatenate(single)  # paired per user (and fold)
        se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("inf")
        names = [name for (_, name, _), c in zip(self.kept, best_w) if c > 0]
        weights = [c / steps for c in best_w if c > 0]
        folds = [float(f.mean()) for f in best_pu]
        return _Mix(names, weights, mean(best_pu), self.kept[0][1], mean(single), se, len(d), self.sampled, folds)
