"""LightFM (Kula 2015) without side features: matrix factorisation trained with WARP or BPR.

LightFM trains; ncf scores. After fitting, the user and item representations
(``get_user_representations()`` / ``get_item_representations()``: biases and embeddings)
are kept as tensors and every item is scored as ``u @ V.T + item_bias + user_bias`` in
torch, the same number ``LightFM.predict`` gives, so ranking goes through ncf.

lightfm is optional and its 1.17 sdist does not build with pip's default (PEP 517) build;
see :data:`LIGHTFM_HINT`. Loading a saved model does not need it.

Recency (``recency``, as for every model: :mod:`ncf.weighting`): the weights go to
``LightFM.fit`` as ``sample_weight``, a COO matrix aligned with the interactions.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from ncf.baselines._base import FactorModel, check_train, resolve_seed
from ncf.data.interactions import Interactions
from ncf.errors import ConfigError
from ncf.params import SEED, Choice, Float, Int, param
from ncf.update import Merged, apply_update, check_epochs, fit_seed, grow_rows, model_recency

# lightfm 1.17's setup.py sets an attribute on ``__builtins__``, which fails under PEP 517 build
# hooks (there ``__builtins__`` is a dict), whatever the setuptools version. With ``wheel``
# installed and no build isolation, pip < 25.3 builds it the legacy ``setup.py bdist_wheel``
# way instead, which works with current setuptools (84) and numpy 2; pip >= 25.3 dropped that
# path. The sdist ships generated C, so Cython is not needed.
LIGHTFM_HINT = (
    'lightfm is not installed: pip install wheel "pip<25.3" && pip install --no-build-isolation lightfm==1.17'
)
LOSSES = ("warp", "bpr", "logistic", "warp-kos")


def require_lightfm() -> Any:
    """The ``lightfm`` package, or a one-line ConfigError saying how to install it."""
    try:
        return importlib.import_module("lightfm")
    except ImportError:
        raise ConfigError(LIGHTFM_HINT) from None


@dataclasses.dataclass(eq=False, repr=False)
class LightFMModel(FactorModel):
    """A ``lightfm.LightFM`` model on the interactions alone (identity user/item features).

    Parameters
    ----------
    loss:
        ``"warp"`` (default), ``"bpr"``, ``"logistic"`` or ``"warp-kos"``.
    no_components:
        Embedding size (>= 1).
    learning_rate:
        Adagrad learning rate (> 0).
    epochs:
        Passes over the interactions (>= 1).
    item_alpha, user_alpha:
        L2 penalties on item / user features (>= 0).
    seed:
        Seed of the initialisation and negative sampling; None draws one (recorded in ``seed_``).
    num_threads:
        Training threads (>= 1). LightFM's SGD is Hogwild: only ``num_threads=1`` (default)
        is reproducible.
    recency, recency_floor:
        Per-interaction ``sample_weight`` favouring each user's latest interactions (see
        :class:`ncf.NCF` and :mod:`ncf.weighting`); ``"auto"`` (default) is on when ``train``
        has timestamps and is not a random holdout.
    """

    name = "lightfm"
    MODEL_CLASS = "LightFM"

    loss: str = param("warp", Choice(*LOSSES), "warp, bpr, logistic or warp-kos")
    no_components: int = param(10, Int(1), "embedding size")
    learning_rate: float = param(0.05, Float(0.0, open_lo=True), "Adagrad learning rate")
    epochs: int = param(10, Int(1), "passes over the interactions")
    item_alpha: float = param(0.0, Float(0.0), "L2 penalty on item features")
    user_alpha: float = param(0.0, Float(0.0), "L2 penalty on user features")
    seed: int | None = param(None, SEED, "seed of the initialisation and negative sampling")
    num_threads: int = param(1, Int(1), "training threads (> 1 is not reproducible)")

    @classmethod
    def require(cls) -> None:
        require_lightfm()

    def _uses_weights(self) -> bool:
        return self.loss != "warp-kos"  # LightFM has no sample weights for k-OS

    def _label(self) -> str:
        return f"lightfm (loss={self.loss!r})" if self.loss in LOSSES else "lightfm"

    def fit(self, train: Interactions, validation: Any = None) -> LightFMModel:
        """Train from scratch on ``train``; ``validation`` is accepted for interface parity and ignored."""
        self._validate()
        train = check_train(train, "LightFMModel")
        require_lightfm()
        from lightfm import LightFM

        weights = self._recency_weights(train)
        self.seed_ = resolve_seed(self.seed)
        model = LightFM(
            no_components=int(self.no_components),
            learning_rate=float(self.learning_rate),
            loss=self.loss,
            item_alpha=float(self.item_alpha),
            user_alpha=float(self.user_alpha),
            random_state=self.seed_,
        )
        t0 = time.perf_counter()
        x = train.csr.tocoo()  # row-major: the same order as train's rows, so the weights line up
        sample_weight = (
            None if weights is None else sp.coo_matrix((weights.astype(np.float32), (x.row, x.col)), shape=x.shape)
        )
        model.fit(x, sample_weight=sample_weight, epochs=int(self.epochs), num_threads=int(self.num_threads))
        self.fit_seconds_ = time.perf_counter() - t0
        user_bias, user_emb = model.get_user_representations()
        item_bias, item_emb = model.get_item_representations()
        self._set_factors(user_emb, item_emb, user_bias, item_bias)
        self.train_ = train
        return self

    def update(self, new_interactions: Interactions, epochs: int | None = None) -> LightFMModel:
        """Add new interactions (new users and items welcome); returns self, updated in place.

        ``LightFM.fit_partial`` on the merged matrix for ``epochs`` epochs (default: half of
        ``epochs``), starting from the current embeddings and biases; the identity feature
        matrices grow by the new users and items, whose rows start like LightFM's own init
        (uniform / no_components, zero bias). Adagrad's accumulators start afresh. See :mod:`ncf.update`.
        """
        self._validate()
        require_lightfm()
        from lightfm import LightFM

        n_epochs = check_epochs(epochs, max(1, int(self.epochs) // 2))

        def body(m: Merged) -> str:
            data, seed, k = m.data, fit_seed(self), int(self.no_components)
            rng = np.random.default_rng(seed)
            lfm = LightFM(
                no_components=k,
                learning_rate=float(self.learning_rate),
                loss=self.loss,
                item_alpha=float(self.item_alpha),
                user_alpha=float(self.user_alpha),
                random_state=seed,
            )
            lfm._initialize(k, data.n_items, data.n_users)  # identity features: one per item / user
            lfm.user_embeddings[:] = grow_rows(self.user_factors_, data.n_users, rng, scale=1.0 / k)
            lfm.item_embeddings[:] = grow_rows(self.item_factors_, data.n_items, rng, scale=1.0 / k)
            lfm.user_biases[:] = grow_rows(self.user_bias_, data.n_users, rng, fill=0.0)
            lfm.item_biases[:] = grow_rows(self.item_bias_, data.n_items, rng, fill=0.0)
            weights = self._recency_weights(data)
            x = data.csr.tocoo()  # row-major, like data's rows: the weights line up
            sw = None if weights is None else sp.coo_matrix((weights.astype(np.float32), (x.row, x.col)), x.shape)
            lfm.fit_partial(x, sample_weight=sw, epochs=n_epochs, num_threads=int(self.num_threads))
            user_bias, user_emb = lfm.get_user_representations()
            item_bias, item_emb = lfm.get_item_representations()
            self._set_factors(user_emb, item_emb, user_bias, item_bias)
            self.train_ = data
            return f"LightFM fit_partial from the current embeddings: {n_epochs} epochs on the merged data"

        return apply_update(self, new_interactions, body, uses_recency=model_recency(self) is not None)
