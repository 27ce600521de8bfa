"""Per-interaction weights every model can be fitted with: one meaning of ``recency``.

Recency weighting says a user's recent interactions tell more about what they do next than
their old ones. An interaction followed by ``r`` later ones of the same user weighs
``floor + (1 - floor) * 2 ** (-r / half_life)``. GMF/MLP/NeuMF weigh each training row by it;
EASE and item-kNN score a recency-weighted user profile; implicit ALS takes it as confidence;
LightFM as ``sample_weight``; popularity counts weighted interactions.

``recency="auto"`` means the same for every model: on when the task is predicting the
future (the data has timestamps and did not come from a random per-user holdout), off
otherwise; ``None`` is off; a number is the half-life, in interactions.
"""

from __future__ import annotations

import numpy as np

from ncf.data.interactions import Interactions
from ncf.errors import DataError
from ncf.split import rank_from_end

__all__ = ["AUTO_RECENCY_HALF_LIFE", "RECENCY_TENSOR", "recency_curve", "recency_weights", "resolve_recency"]

#: Half-life (in interactions) that ``recency="auto"`` uses; chosen on ML-100k validation (benchmarks/RESULTS.md).
AUTO_RECENCY_HALF_LIFE = 5.0
#: The weight a bundle holds a fitted model's resolved half-life in (absent: recency was off). Saved with
#: the weights, under the bundle's checksum: it shapes scores (baselines) and fold-in profiles (every model).
RECENCY_TENSOR = "recency_half_life"


def resolve_recency(
    recency: float | str | None, train: Interactions, auto: float = AUTO_RECENCY_HALF_LIFE
) -> float | None:
    """The half-life to fit with: ``"auto"`` is ``auto`` exactly when the task is predicting the future.

    That is when ``train`` has timestamps and came from a split by time (leave-one-out,
    temporal, or a holdout of the latest items), or from no split at all; a random
    holdout asks for random past items, where recent ones are no more telling.
    """
    if recency is None:
        return None
    if recency == "auto":
        if train.timestamps is None or (train.split is not None and train.split.random):
            return None
        return auto
    if train.timestamps is None:
        raise DataError("recency weighting needs timestamps, and train has none; set recency=None or load timestamps")
    return float(recency)


def recency_weights(train: Interactions, half_life: float, floor: float) -> np.ndarray:
    """One weight per interaction of ``train`` (in its row order), rescaled to mean 1 so a
    learning rate keeps its meaning."""
    if train.timestamps is None:
        raise DataError("recency weighting needs timestamps; load the data with timestamp=... or set recency=None")
    w = recency_curve(rank_from_end(train), half_life, floor)
    return w / w.mean()


def recency_curve(r: np.ndarray, half_life: float, floor: float) -> np.ndarray:
    """The unscaled weight of an interaction with ``r`` later ones by the same user:
    ``floor + (1 - floor) * 2 ** (-r / half_life)``."""
    return floor + (1.0 - floor) * np.exp2(-r / half_life)
