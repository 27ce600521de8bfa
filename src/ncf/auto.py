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

The result is one ordinary model (an :class:`ncf.NCF` or a baseline) whose ``leaderboard_``
lists every candidate: its validation metric and fit time, or why it was skipped. Bundles
keep the leaderboard, and ``ncf evaluate`` and ``GET /v1/model`` show it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from ncf import split
from ncf.base import Recommender
from ncf.checks import check_int
from ncf.data.interactions import Interactions
from ncf.errors import ConfigError, DataError
from ncf.evaluation import evaluate
from ncf.metrics import parse_metric
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
) -> Recommender:
    """The best of ``candidates`` on validation, refit on all of ``train``; see the module notes.

    ``budget`` (seconds) bounds the candidates' fits on the inner parts; the winner's refit
    comes on top. ``params`` maps a candidate name to its hyper-parameters. ``folds`` (1-10):
    validation parts each candidate is scored on (the mean decides). Raises ConfigError when
    the budget is too small for any candidate.
    """
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
        raise ConfigError(f"budget == {budget!r}, must be a number of seconds > 0")
    folds = check_int("folds", folds, 1, maximum=MAX_FOLDS)
    names = check_models(list(candidates))
    base, k, key = parse_metric(metric)
    params = {check_models([n])[0]: dict(p) for n, p in (params or {}).items()}
    parts = _validation_parts(train, folds, seed)
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
            scores, fit_s = [], 0.0
            for j, (inner, val) in enumerate(parts):
                model = make_model(name, params.get(name), seed + j)
                if hasattr(model, "callbacks"):  # NCF: stop training (keeping the best epoch) when the budget is spent
                    model.callbacks = (*model.callbacks, lambda epoch, logs: time.perf_counter() > deadline)
                t0 = time.perf_counter()
                model.fit(inner)
                fit_s += time.perf_counter() - t0
                scores.append(float(evaluate(model, val, k=k, metrics=[base])[key]))
        except ConfigError as e:  # e.g. an optional library is missing: say so, try the others
            board.append({**row, "status": f"skipped: {e}"})
            continue
        status = "ok" if time.perf_counter() <= deadline else "ok (training stopped when the budget ran out)"
        row.update(status=status, **{f"val_{metric}": sum(scores) / folds}, fit_seconds=round(fit_s / folds, 3))
        if folds > 1:
            row[f"val_{metric}_folds"] = scores
        board.append(row)
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
    best["chosen"] = True
    winner = make_model(best["model"], params.get(best["model"]), seed).fit(train)
    winner.leaderboard_ = board
    return winner
