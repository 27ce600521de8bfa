"""LightFM (Kula 2015) without side features: matrix factorisation trained with WARP or BPR.

LightFM trains; ncf scores. After fitting, the user and item representations
(``get_user_representations()`` / ``get_item_representations()``: biases and embeddings)
are kept as tensors and every item is scored as ``u @ V.T + item_bias + user_bias`` in
torch, the same number ``LightFM.predict`` gives, so ranking goes through ncf.

lightfm is optional and its 1.17 sdist does not build with pip's default (PEP 517) build;
see :data:`LIGHTFM_HINT`. Loading a saved model does not need it.
"""

from __future__ import annotations

import importlib
import time
from typing import Any

from ncf.baselines._base import FactorModel, check_train, need_float, need_seed, resolve_seed
from ncf.checks import check_int
from ncf.data.interactions import Interactions
from ncf.errors import ConfigError

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
    """

    name = "lightfm"
    PARAMS = ("loss", "no_components", "learning_rate", "epochs", "item_alpha", "user_alpha", "seed", "num_threads")
    MODEL_CLASS = "LightFM"

    def __init__(
        self,
        loss: str = "warp",
        no_components: int = 10,
        learning_rate: float = 0.05,
        epochs: int = 10,
        item_alpha: float = 0.0,
        user_alpha: float = 0.0,
        seed: int | None = None,
        num_threads: int = 1,
    ) -> None:
        require_lightfm()
        self._set_params(
            loss=loss, no_components=no_components, learning_rate=learning_rate, epochs=epochs,
            item_alpha=item_alpha, user_alpha=user_alpha, seed=seed, num_threads=num_threads,
        )  # fmt: skip

    def _validate(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"loss == {self.loss!r}, must be one of {', '.join(LOSSES)}")
        check_int("no_components", self.no_components)
        need_float("learning_rate", self.learning_rate, 0.0, open_low=True)
        check_int("epochs", self.epochs)
        need_float("item_alpha", self.item_alpha, 0.0)
        need_float("user_alpha", self.user_alpha, 0.0)
        need_seed(self.seed)
        check_int("num_threads", self.num_threads)

    def fit(self, train: Interactions, validation: Any = None) -> LightFMModel:
        """Train from scratch on ``train``; ``validation`` is accepted for interface parity and ignored."""
        self._validate()
        train = check_train(train, "LightFMModel")
        require_lightfm()
        from lightfm import LightFM

        self.seed_ = resolve_seed(self.seed)
        model = LightFM(
            no_components=int(self.no_components), learning_rate=float(self.learning_rate), loss=self.loss,
            item_alpha=float(self.item_alpha), user_alpha=float(self.user_alpha), random_state=self.seed_,
        )  # fmt: skip
        t0 = time.perf_counter()
        model.fit(train.csr.tocoo(), epochs=int(self.epochs), num_threads=int(self.num_threads))
        self.fit_seconds_ = time.perf_counter() - t0
        user_bias, user_emb = model.get_user_representations()
        item_bias, item_emb = model.get_item_representations()
        self._set_factors(user_emb, item_emb, user_bias, item_bias)
        self.train_ = train
        return self
