"""Most-popular items: the floor every personalised model must clear."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ncf.base import Recommender
from ncf.data.interactions import Interactions
from ncf.errors import DataError


class Popularity(Recommender):
    """Scores every item by its number of training interactions, the same for all users."""

    name = "popularity"

    def fit(self, train: Interactions, validation: Any = None) -> Popularity:
        if len(train) == 0:
            raise DataError("train has no interactions; nothing to count")
        self.train_ = train
        self.scores_ = torch.as_tensor(train.item_counts.astype(np.float32))
        return self

    def _score_users(self, users: torch.Tensor) -> torch.Tensor:
        return self.scores_.to(users.device).expand(len(users), -1).clone()

    def _score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.scores_.to(items.device)[items]
