"""Most-popular items: the floor every personalised model must clear."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ncf.baselines._base import _Baseline, check_train, expect_shape
from ncf.data.interactions import Interactions


@dataclasses.dataclass(eq=False, repr=False)
class Popularity(_Baseline):
    """Scores every item by its number of training interactions, the same for all users.

    With recency weighting (``recency``, as for every model: :mod:`ncf.weighting`) each
    interaction counts its weight, so items a user took recently count more than old ones.
    """

    name = "popularity"
    MODEL_CLASS = "Popularity"
    WEIGHTS = {"scores": torch.float32}

    def fit(self, train: Interactions, validation: Any = None) -> Popularity:
        """Count interactions per item; ``validation`` is accepted for interface parity and ignored."""
        self._validate()
        t = time.perf_counter()
        train = check_train(train, "Popularity")
        weights = self._recency_weights(train)
        counts = np.bincount(train.item_idx, weights=weights, minlength=train.n_items)
        self.scores_ = torch.as_tensor(counts.astype(np.float32))
        self.train_ = train
        self.fit_seconds_ = time.perf_counter() - t
        return self

    def score_block(self, users: torch.Tensor) -> torch.Tensor:
        return self.scores_.to(users.device).expand(len(users), -1).clone()

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.scores_.to(items.device)[items]

    def history_scores(self, profiles: sp.csr_matrix) -> torch.Tensor:
        """The same popularity scores for every history (a history changes nothing but seen-item filtering)."""
        self.check_fitted()
        return self.scores_.expand(profiles.shape[0], -1).clone()

    def _weights(self) -> dict[str, torch.Tensor]:
        return {"scores": self.scores_}

    def _restore(self, weights: dict[str, torch.Tensor], train: Interactions) -> None:
        self.scores_ = expect_shape(weights, "scores", (train.n_items,)).float()
