"""The item-item term of an NCF model: an EASE model blended into its scores, weighted on validation.

NCF's towers learn a user vector per user; EASE (:mod:`ncf.baselines.ease`) scores a user's
whole profile through an item-item matrix. They err differently, and on ML-100k a blend of
the two beats either alone on validation (benchmarks/RESULTS.md, "item-item term"). The
blend is one model: one fit, one bundle, one ``recommend``; its weight is a hyper-parameter
chosen on the validation part like the epoch count.

A user's blended scores are ``(1 - w) * z(ncf) + w * z(ease)``, where ``z`` standardises a
user's scores over all items (mean 0, standard deviation 1) so that logits and EASE's linear
scores are on one scale; standardising per user does not change either model's own ranking.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from ncf.data.interactions import Interactions
from ncf.evaluation import evaluate_scores
from ncf.metrics import parse_metric

#: The EASE weights ``"auto"`` chooses from on validation (0: the towers alone, 1: EASE alone).
GRID: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
#: The EASE L2 values ``item_item_l2="auto"`` chooses from, a factor ~3 apart (EASE's own tuning on
#: ML-100k chose 100 on leave-one-out and 750 on the holdout: benchmarks/tuned_params.json). Each
#: value costs one items x items inverse; on nested validation this grid scored as the finer
#: 50/100/200/500/1000 did (benchmarks/RESULTS.md, "Fast default recipe").
L2_GRID: tuple[float, ...] = (100.0, 300.0, 1000.0)
#: ``"auto"`` without a validation part (``fit(validation=None)``): the middle of each grid.
NO_VALIDATION_WEIGHT = 0.5
NO_VALIDATION_L2 = 500.0
#: ``"auto"`` leaves the term off above this many items: EASE inverts a dense items x items
#: matrix (O(n^3) time, n^2 memory in the bundle), minutes and gigabytes past ~10k items.
AUTO_MAX_ITEMS = 10_000

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


def standardise(scores: torch.Tensor) -> torch.Tensor:
    """Each row to mean 0 and standard deviation 1 (a constant row becomes all zeros)."""
    # in float64: a row's statistics then do not depend on how many rows share the block
    s = scores.double()
    sd = s.std(dim=1, keepdim=True, unbiased=False)
    return ((s - s.mean(dim=1, keepdim=True)) / torch.where(sd > 0, sd, torch.ones_like(sd))).float()


def standardise_by_first_row(scores: torch.Tensor) -> torch.Tensor:
    """Every row by row 0's mean and standard deviation (float64): ``explain``'s stacked rows (row 0 the
    full history, the others without one item each) stay on the full history's scale, so a part's
    removal effect is not undone by re-standardising each row (see :meth:`ncf.NCF._explain_scores`)."""
    s = scores.double()
    sd = s[0].std(unbiased=False)
    return (s - s[0].mean()) / (sd if sd > 0 else 1.0)


def blend(ncf: torch.Tensor, ease: torch.Tensor, weight: float) -> torch.Tensor:
    """``(1 - weight) * z(ncf) + weight * z(ease)``, row by row."""
    if weight <= 0.0:
        return ncf
    return (1.0 - weight) * standardise(ncf) + weight * standardise(ease.to(ncf.device))


def choose_weight(
    ncf_scores: ScoreFn,
    ease_scores: ScoreFn,
    train: Interactions,
    validation: Interactions,
    metric: str,
    grid: Sequence[float] = GRID,
) -> tuple[float, dict[str, float]]:
    """The grid weight with the best validation ``metric`` (ties: the smaller EASE weight), and the
    whole table ``{weight: metric}``. Each model scores the validation users once."""
    w, table, _ = choose(ncf_scores, [(0.0, ease_scores)], train, validation, metric, grid)
    return w, table


def choose(
    ncf_scores: ScoreFn,
    ease_models: Iterable[tuple[float, ScoreFn]],
    train: Interactions,
    validation: Interactions,
    metric: str,
    grid: Sequence[float] = GRID,
) -> tuple[float, dict[str, float], float]:
    """The best (weight, L2) on validation over ``grid`` x ``ease_models`` (``(l2, scores)`` pairs,
    consumed one at a time): the weight, that L2's table ``{weight: metric}`` and the L2. Ties go
    to the smaller EASE weight, then the earlier L2. The towers score the validation users once."""
    name, k, key = parse_metric(metric)
    users = np.flatnonzero(np.diff(validation.csr.indptr) > 0)
    pos = np.full(train.n_users, -1, dtype=np.int64)
    pos[users] = np.arange(len(users))
    u = torch.as_tensor(users)
    with torch.inference_mode():
        z_ncf = standardise(ncf_scores(u)).cpu()
    best: tuple[float, dict[str, float], float] | None = None
    for l2, ease_scores in ease_models:
        with torch.inference_mode():
            z_ease = standardise(ease_scores(u)).cpu()
        table: dict[str, float] = {}
        for w in grid:
            fixed = (1.0 - w) * z_ncf + w * z_ease

            def score(batch: torch.Tensor, fixed: torch.Tensor = fixed) -> torch.Tensor:
                return fixed[torch.as_tensor(pos[batch.cpu().numpy()])]

            res = evaluate_scores(score, None, train, validation, k=k, metrics=[name])
            table[f"{w:.1f}"] = float(res[key])
        w = float(max(table, key=lambda key: (table[key], -float(key))))
        if best is None or table[f"{w:.1f}"] > best[1][f"{best[0]:.1f}"]:
            best = (w, table, l2)
    if best is None:
        raise ValueError("ease_models is empty")
    return best
