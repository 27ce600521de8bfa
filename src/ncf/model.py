"""NCF: the estimator users hold (fit / recommend / similar_items / score / save / load)."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch

from ncf import nn as ncf_nn
from ncf.base import Recommender
from ncf.data.interactions import Interactions
from ncf.errors import BundleError, ConfigError, DataError, ModelDivergedError, one_line
from ncf.params import (
    RECENCY,
    RECENCY_HELP,
    SEED,
    Bool,
    Choice,
    Either,
    Float,
    Int,
    IntList,
    Metric,
    declared,
    param,
    setting,
    validate,
)
from ncf.train.trainer import TrainConfig, TrainResult, UserCallback, train_module
from ncf.update import DEFAULT_OLD_RATIO, update_history, update_ncf
from ncf.weighting import RECENCY_TENSOR, resolve_recency

if TYPE_CHECKING:
    from ncf.persist import Bundle
    from ncf.train.checkpoint import Checkpoint

MODELS = ("gmf", "mlp", "neumf")
#: NCF fold-in (:mod:`ncf.foldin`): the setting with the best validation NDCG@10 among those that
#: answer a single ML-100k history within 20 ms p99 (issue 15's budget): 10 steps at lr 0.02 scored
#: 0.3215 on a validation part of new users' histories, 20 steps 0.3241 but at 25 ms p99 for NeuMF
#: (benchmarks/fold_in.py --tune; RESULTS, "Fold-in").
NCF_FOLDIN_STEPS = 10
NCF_FOLDIN_LR = 0.02
#: Bundle weights of the item-item term (:mod:`ncf.item_item`): its weight, EASE's matrix, L2 and recency half-life.
ITEM_ITEM_WEIGHT = "item_item.weight"
ITEM_ITEM_B = "item_item.B"
ITEM_ITEM_L2 = "item_item.l2"
ITEM_ITEM_RECENCY = "item_item.recency_half_life"
LOSSES = ("bce", "bpr", "softmax")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/"auto" picks CUDA when present, else CPU; anything else must exist."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device == {device!r}, must be 'cpu', 'cuda', 'cuda:N' or 'auto'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device == {device!r} but CUDA is not available here; use device='cpu' or 'auto'")
    return dev


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of a fit: train a ``kind`` module, new or fused from the trained GMF and MLP
    stages (``init="fuse"``), at ``lr_scale`` times the learning rate."""

    kind: str
    init: str = "new"
    lr_scale: float = 1.0


@dataclasses.dataclass(eq=False, repr=False)
class NCF(Recommender):
    """Neural Collaborative Filtering (GMF, MLP or NeuMF) for implicit feedback.

    Parameters
    ----------
    model:
        ``"neumf"`` (GMF + MLP towers), ``"gmf"`` or ``"mlp"``.
    factors:
        Predictive factors of the GMF part (>= 1).
    layers:
        MLP sizes: ``layers[0]`` is the concatenated [user; item] embedding size (even),
        the rest are the hidden layers, e.g. ``(64, 32, 16, 8)``.
    negatives:
        Uniform negatives per positive, re-drawn each epoch; or ``"all"`` to use every
        unobserved pair as a negative (the seed notebook's setup; small data only). With
        ``loss="softmax"``: how many items each batch draws as shared negatives.
    loss:
        ``"bce"`` (pointwise, the paper's), ``"bpr"`` (pairwise) or ``"softmax"``
        (sampled softmax: each positive against the batch's shared negatives, known
        positives masked; better ranking per epoch, but each epoch scores
        ``batch x negatives`` pairs, so it is several times slower than BCE).
    epochs, batch_size, learning_rate, lr_schedule:
        Training length and Adam settings (SparseAdam for embeddings when ``sparse``). With
        ``lr_schedule="linear"`` (default) the step falls linearly from ``learning_rate`` to
        0 over ``epochs`` epochs; ``"constant"`` keeps it. The defaults (6 epochs from 0.02,
        linear) match the former recipe (up to 30 epochs at a constant 0.005, then a refit)
        on nested validation at about a third of its training time (benchmarks/RESULTS.md,
        "Fast default recipe").
    weight_decay:
        L2 coefficient on the embedding rows each batch touches.
    dropout:
        Dropout after each MLP hidden layer, in [0, 1).
    patience:
        Epochs without validation improvement before stopping; the best epoch's
        weights are restored.
    pretrain, alpha:
        NeuMF only (GMF and MLP ignore them): train GMF and MLP first, fuse them into
        NeuMF with output weights ``[alpha h_GMF; (1 - alpha) h_MLP]`` (the paper's
        pretraining), then fine-tune at a tenth of the learning rate. Off by default since
        the item-item term: with it, pretraining was +1.5 % NDCG@10 on holdout validation and
        -2.1 % on leave-one-out, at up to twice the fit time (benchmarks/RESULTS.md, "item-item
        term"); without the term it was +10 %.
    refit:
        After early stopping picked the number of epochs on the validation part, train
        again on all of ``train`` for that many epochs (like scikit-learn's ``refit``).
        Costs a second training run. Off by default: with the item-item term (refitted on
        all of ``train`` either way, cheaply) the towers' refit did not pay on nested
        validation (benchmarks/RESULTS.md, "Fast default recipe").
    metric:
        Validation metric for early stopping, e.g. ``"ndcg@10"``, ``"hr@10"``.
    item_item, item_item_l2:
        An item-item term next to the towers (:mod:`ncf.item_item`): an EASE model with L2
        ``item_item_l2`` fitted on the same interactions and recency weights, blended into
        the scores as ``(1 - w) * z(towers) + w * z(EASE)`` (``z``: each user's scores
        standardised). ``"auto"`` (default) chooses ``w`` from 0, 0.1, ..., 1 and the L2 from
        100, 300, 1000 on the validation part (without one: 0.5 and 500; the term is
        off above 10,000 items, where EASE's dense item-item matrix gets expensive); numbers
        fix them; ``item_item=0`` turns the term off. On
        ML-100k the blend beats both its parts on validation (benchmarks/RESULTS.md). The
        chosen weight is ``item_item_`` and shows in the bundle and ``GET /v1/model``.
    recency, recency_floor:
        Weight each user's recent interactions more: an interaction with ``r`` later ones
        by the same user weighs ``floor + (1 - floor) * 2 ** (-r / recency)`` (rescaled to
        mean 1). Predicting a user's *next* item (leave-one-out or temporal splits, and
        production) rewards it strongly; see benchmarks/RESULTS.md. ``"auto"`` turns it
        on, with the half-life chosen on ML-100k validation, when ``train`` has timestamps
        and did not come from a random holdout; ``None`` turns it off. Needs timestamps.
    sparse:
        Sparse embedding gradients (optimizer cost scales with the batch).
    seed:
        Drives weight init, negatives, shuffling and the validation carve-out.
    lr_scaling, lr_reference_batch, warmup_epochs:
        Large-batch rule: with ``lr_scaling="sqrt"`` (or ``"linear"``) the step is
        ``learning_rate * (batch_size / lr_reference_batch) ** 0.5`` (or ``** 1``), reached
        by a linear warm-up over ``warmup_epochs`` epochs. ``"none"`` (default) uses
        ``learning_rate`` as given. Measurements: benchmarks/RESULTS.md.
    compile:
        ``torch.compile`` the module (autograd path with ``sparse=False``: inductor cannot
        compile sparse embedding gradients; the default fused step is not compiled). Off
        by default; see benchmarks/RESULTS.md for whether it pays.
    device:
        ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when available).

    Notes
    -----
    ``fit`` forgets any earlier fit. Learned attributes end in ``_``: ``module_``,
    ``train_`` (the interactions used for seen-item filtering), ``history_``,
    ``validation_metrics_``.
    """

    name = "ncf"

    model: str = param(
        "neumf", Choice(*MODELS), "gmf, mlp or neumf (GMF + MLP towers)", flag=False
    )  # ncf train --model: every model
    factors: int = param(32, Int(1), "predictive factors of the GMF part")
    layers: Sequence[int] = param(
        (64, 32, 16, 8),
        IntList("64, 32, 16, 8", even_first=True),
        "MLP sizes: the [user; item] embedding size (even), then the hidden layers",
    )
    negatives: int | str = param(
        8,
        Either(Int(1), literals=("all",), parse_literals={"all": "all"}),
        "negatives per positive, or 'all' (every unobserved pair; BCE only)",
    )
    loss: str = param("bce", Choice(*LOSSES), "bce (pointwise), bpr (pairwise) or softmax (sampled)")
    epochs: int = param(6, Int(1), "most epochs per training stage (the linear schedule's horizon)")
    batch_size: int = param(8192, Int(1), "training rows per step")
    learning_rate: float = param(0.02, Float(0.0, 10.0, open_lo=True), "Adam step size (the first epoch's)")
    weight_decay: float = param(0.01, Float(0.0, 1e6), "L2 on the embedding rows each batch touches")
    dropout: float = param(0.0, Float(0.0, 1.0, open_hi=True), "dropout after each MLP hidden layer")
    patience: int = param(2, Int(0), "epochs without validation improvement before stopping")
    pretrain: bool = param(False, Bool(), "NeuMF: train GMF and MLP first, fuse, fine-tune")
    alpha: float = param(0.85, Float(0.0, 1.0), "NeuMF pretraining: GMF's share of the fused output layer")
    refit: bool = param(False, Bool(), "retrain on all of train for the epochs early stopping chose")
    metric: str = param("ndcg@10", Metric(), "validation metric for early stopping, e.g. ndcg@10, hr@10")
    item_item: float | str = param(
        "auto",
        Either(Float(0.0, 1.0), literals=("auto",), parse_literals={"auto": "auto"}),
        "weight of the EASE item-item term in the scores (0: off; 'auto': chosen on validation)",
    )
    item_item_l2: float | str = param(
        "auto",
        Either(Float(0.0, open_lo=True), literals=("auto",), parse_literals={"auto": "auto"}),
        "L2 of the item-item (EASE) term ('auto': chosen on validation with the weight)",
    )
    recency: float | str | None = param("auto", RECENCY, RECENCY_HELP)
    recency_floor: float = param(0.1, Float(0.0, 1.0), "the weight recency never goes below")
    sparse: bool = param(True, Bool(), "sparse embedding gradients (optimiser cost scales with the batch)")
    seed: int | None = param(None, SEED, "drives init, negatives, shuffling, validation")
    lr_scaling: str = param("none", Choice("none", "sqrt", "linear"), "scale the learning rate from lr_reference_batch")
    lr_reference_batch: int = param(1024, Int(1), "the batch size the learning rate was tuned at")
    warmup_epochs: float = param(0.0, Float(0.0), "linear learning-rate warm-up (epochs)")
    lr_schedule: str = param(
        "linear", Choice("constant", "linear"), "learning rate over the epochs: constant, or linear decay to 0"
    )
    compile: bool = param(False, Bool(), "torch.compile the model (autograd path, needs sparse=False)")
    device: str | torch.device | None = setting(None)
    verbose: bool = setting(False)
    tensorboard: str | os.PathLike[str] | None = setting(None)
    callbacks: Sequence[UserCallback] = setting(())

    # -- parameters ------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        p = {f.name: getattr(self, f.name) for f in declared(self)}
        p["layers"] = list(p["layers"])
        return p

    def _validate(self) -> None:
        validate(self)
        if self.negatives == "all" and self.loss != "bce":
            raise ConfigError(
                f"negatives='all' needs loss='bce'; {self.loss!r} contrasts each positive with sampled negatives"
            )
        if self.compile and self.sparse:
            raise ConfigError(
                "compile=True needs sparse=False: torch.compile (inductor) cannot compile sparse embedding gradients"
            )

    # -- fitting ---------------------------------------------------------------------
    def _config(self) -> TrainConfig:
        """The training settings: every TrainConfig field NCF declares, plus what fit resolved."""
        # the decay horizon is the epochs parameter, also in a refit that trains fewer epochs
        resolved = {"seed": self.seed_, "recency": self.recency_, "decay_epochs": self.epochs}
        same = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(TrainConfig)
            if f.name in self.__dataclass_fields__
        }
        return TrainConfig(**{**same, **resolved})

    def _build(self, kind: str, n_users: int, n_items: int) -> torch.nn.Module:
        return ncf_nn.build(kind, n_users, n_items, self.factors, tuple(self.layers), self.dropout, self.sparse)

    def _train_stages(
        self,
        data: Interactions,
        val: Interactions | None,
        cfg: TrainConfig,
        writer: Any,
        epochs: dict[str, int] | None,
        ck: Checkpoint,
    ) -> tuple[torch.nn.Module, TrainResult, dict[str, Any]]:
        """Run :meth:`plan`'s stages; with ``epochs`` (a refit) each stage trains exactly that many epochs."""
        torch.manual_seed(self.seed_)
        n_users, n_items = data.shape
        refit = epochs is not None
        trained: dict[str, torch.nn.Module] = {}
        history: dict[str, Any] = {}
        for st in self.plan():
            if st.init == "fuse":
                module = ncf_nn.NeuMF.from_pretrained(
                    trained["gmf"], trained["mlp"], self.alpha, dropout=self.dropout, sparse=self.sparse
                )
            else:
                module = self._build(st.kind, n_users, n_items)
            over: dict[str, Any] = {"epochs": epochs[st.kind]} if refit else {}
            if st.lr_scale != 1.0:
                over["learning_rate"] = cfg.learning_rate * st.lr_scale
            res = train_module(
                module,
                data,
                val,
                dataclasses.replace(cfg, **over),
                device=self.device_,
                callbacks=self.callbacks,
                progress=self.verbose,
                writer=writer,
                tag=st.kind + (" (refit)" if refit else ""),
                # each stage has its own checkpoint file: gmf, mlp, neumf, gmf_refit, ...
                checkpoint=ck.stage(st.kind + ("_refit" if refit else ""), st.kind),
            )
            trained[st.kind], history[st.kind] = module, res.to_dict()
        return module, res, history

    def plan(self) -> tuple[Stage, ...]:
        """The training stages, in order: NeuMF with pretraining is GMF, MLP, then the two fused."""
        if self.model == "neumf" and self.pretrain:
            # The paper fine-tunes the fused model gently (it switches to SGD); a smaller
            # Adam step keeps the pretrained towers from being undone in the first epoch.
            return (Stage("gmf"), Stage("mlp"), Stage("neumf", init="fuse", lr_scale=0.1))
        return (Stage(self.model),)

    def fit(
        self,
        train: Interactions,
        validation: Interactions | str | None = "auto",
        *,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        resume: bool = False,
    ) -> NCF:
        """Train on ``train``; returns self.

        ``validation="auto"`` carves a validation part out of ``train`` by the rule that
        made ``train`` (n items per user for a per-user holdout, else one per user: the
        latest by time when timestamps exist, else random) for early stopping; an
        :class:`Interactions` is used as given; ``None`` trains exactly ``epochs`` epochs.
        The carved-out items still count as seen for recommendation.

        ``checkpoint_dir`` writes an atomic checkpoint after every epoch (see
        :mod:`ncf.train.checkpoint`); ``resume=True`` continues the run found there, after a
        crash or ``kill -9``, to the same weights as an uninterrupted run with the same
        seed. A folder that already holds checkpoints needs ``resume=True``; ``resume=True``
        on an empty or missing folder starts a fresh run there. Resuming with other data or
        parameters is refused (:class:`~ncf.errors.ConfigError` naming the difference).

        If training is interrupted (``KeyboardInterrupt``) or diverges
        (:class:`~ncf.errors.ModelDivergedError`), the exception propagates but, when an
        epoch of the final model's kind had finished, the estimator keeps the best weights
        so far (``interrupted_ = {"reason": "interrupted"|"diverged", "kept": "stage neumf, epoch 3, ..."}``),
        so ``save`` works.
        """
        from ncf import split
        from ncf.train.checkpoint import Checkpoint

        self._validate()
        if not isinstance(train, Interactions):
            raise DataError(
                f"train must be an ncf Interactions (use ncf.load_interactions), got {type(train).__name__}"
            )
        if len(train) == 0:
            raise DataError("train has no interactions; nothing to learn from")
        for attr in (
            "module_",
            "kind_",
            "history_",
            "validation_metrics_",
            "train_",
            "interrupted_",
            "leaderboard_",
            "item_item_",
            "item_item_model_",
            "item_item_table_",
            "updates_",
        ):
            self.__dict__.pop(attr, None)
        self.seed_ = int(self.seed) if self.seed is not None else int(np.random.SeedSequence().entropy % (2**31))
        self.device_ = resolve_device(self.device)
        self.recency_ = resolve_recency(self.recency, train)
        run_info: dict[str, Any] = {"params": self.get_params(), "seed": self.seed_}
        if checkpoint_dir is not None:  # data hashes only when they are needed (they cost a pass over the data)
            val_desc = f"given:{validation.fingerprint()}" if isinstance(validation, Interactions) else str(validation)
            run_info.update(data=train.fingerprint(), validation=val_desc)
        ck = Checkpoint(checkpoint_dir, run_info, resume=resume)
        self.seed_ = ck.seed  # a resumed run without an explicit seed takes the checkpoint's
        fit_data = train
        if isinstance(validation, str):
            if validation != "auto":
                raise ConfigError(f"validation == {validation!r}, must be 'auto', an Interactions, or None")
            how, n, fraction = split.validation_rule(train)
            fit_data, val = split.carve_validation(train, how, n=n, fraction=fraction, seed=self.seed_)
            val = val if len(val) else None
        elif validation is None:
            val = None
        elif isinstance(validation, Interactions):
            val = validation.reindex(train.user_map, train.item_map)
        else:
            raise ConfigError(f"validation must be 'auto', an Interactions, or None; got {type(validation).__name__}")

        writer = None
        from ncf.train.distributed import context

        if self.tensorboard is not None and context().is_main:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError(
                    "tensorboard logging needs the tensorboard package: pip install tensorboard"
                ) from None
            writer = SummaryWriter(str(self.tensorboard))
        cfg = self._config()
        try:
            with torch.random.fork_rng(devices=[]):
                module, res, history = self._train_stages(fit_data, val, cfg, writer, None, ck)
                t_ii = time.perf_counter()
                ii_weight, ii_table, ii_l2 = self._choose_item_item(module, fit_data, val)
                ii_seconds = time.perf_counter() - t_ii
                if self.refit and val is not None:
                    # Early stopping chose each stage's epoch count on the validation part; now
                    # train again on all of `train` for exactly that many epochs, so the most
                    # recent interactions (which leave-one-out validation holds back) are learned.
                    epochs = {tag: max(1, h["best_epoch"]) for tag, h in history.items()}
                    module, _, refit_hist = self._train_stages(train, None, cfg, None, epochs, ck)
                    history.update({f"{tag}_refit": h for tag, h in refit_hist.items()})
            if writer is not None:
                metric_key = f"hparam/val_{self.metric}"
                hp = {k: (str(v) if isinstance(v, (list, tuple)) else v) for k, v in self.get_params().items()}
                writer.add_hparams({k: v for k, v in hp.items() if v is not None}, {metric_key: res.best_metric or 0.0})
        except (ModelDivergedError, KeyboardInterrupt) as e:
            self._keep_best_so_far(ck, train, "diverged" if isinstance(e, ModelDivergedError) else "interrupted")
            raise
        finally:
            if writer is not None:
                writer.close()
        t_ii = time.perf_counter()
        ease = self._item_item_model(train, ii_l2) if ii_weight > 0 else None
        ii_seconds += time.perf_counter() - t_ii
        self._set_fitted(
            module,
            train,
            history,
            res.best_epoch,
            res.best_metric,
            sum(h["seconds"] for h in history.values()) + ii_seconds,
            (ii_weight, ease, ii_table),
        )
        if ii_table:
            self.validation_metrics_[f"val_{self.metric}"] = ii_table[f"{ii_weight:.1f}"]
        return self

    def _item_item_ease(self, l2: float) -> Any:
        """The (unfitted) EASE model of the item-item term, with this fit's recency weights."""
        from ncf.baselines.ease import EASE

        return EASE(l2=l2, recency=self.recency_, recency_floor=self.recency_floor)

    def _item_item_model(self, data: Interactions, l2: float) -> Any:
        """The EASE model of the item-item term, fitted on ``data``."""
        return self._item_item_ease(l2).fit(data)

    def _choose_item_item(
        self, module: torch.nn.Module, fit_data: Interactions, val: Interactions | None
    ) -> tuple[float, dict[str, float], float]:
        """The item-item term's weight, its validation table and EASE's L2: as given, or (``"auto"``)
        the best on the validation part, EASE fitted on the part the towers were trained on."""
        from ncf import item_item as ii

        given_l2 = None if self.item_item_l2 == "auto" else float(self.item_item_l2)
        if self.item_item != "auto" and float(self.item_item) == 0:
            return 0.0, {}, given_l2 or ii.NO_VALIDATION_L2
        if self.item_item == "auto" and fit_data.n_items > ii.AUTO_MAX_ITEMS:
            return 0.0, {}, given_l2 or ii.NO_VALIDATION_L2
        if val is None or len(val) == 0:
            w = ii.NO_VALIDATION_WEIGHT if self.item_item == "auto" else float(self.item_item)
            return w, {}, given_l2 or ii.NO_VALIDATION_L2
        if self.item_item != "auto" and given_l2 is not None:
            return float(self.item_item), {}, given_l2
        module.eval()
        grid = ii.GRID if self.item_item == "auto" else (float(self.item_item),)
        l2s = (given_l2,) if given_l2 is not None else ii.L2_GRID
        # one Gram matrix for every L2; each EASE is scored, then dropped, before the next is solved
        path = self._item_item_ease(l2s[0]).fit_path(fit_data, l2s)
        return ii.choose(module.score_block, ((e.l2, e.score_block) for e in path), fit_data, val, self.metric, grid)

    def update(
        self,
        new_interactions: Interactions,
        epochs: int | None = None,
        *,
        old_ratio: float = DEFAULT_OLD_RATIO,
        learning_rate: float | None = None,
        seed: int | None = None,
    ) -> NCF:
        """Add new interactions (new users and items welcome) and continue training; returns self.

        In place, like ``partial_fit``: the id maps and embedding tables grow (a new row starts
        at the mean row), then ``epochs`` (default :data:`ncf.update.DEFAULT_EPOCHS`) epochs on the
        new interactions plus ``old_ratio`` times as many sampled old ones, with this model's
        loss, negatives and recency, at ``learning_rate`` (default: the rate of the final stage).
        ``seed`` defaults to the fit's. A saved bundle is not changed: save to a new folder.
        On an error the model is unchanged. See :mod:`ncf.update`.
        """
        return update_ncf(
            self, new_interactions, epochs=epochs, old_ratio=old_ratio, learning_rate=learning_rate, seed=seed
        )

    def _set_fitted(
        self,
        module: torch.nn.Module,
        train: Interactions,
        history: dict[str, Any],
        best_epoch: int,
        best_metric: float | None,
        seconds: float,
        item_item: tuple[float, Any, dict[str, float]] = (0.0, None, {}),
    ) -> None:
        """The learned state of a fit (complete, or the best so far after an interrupt); ``item_item``:
        the item-item term's weight, EASE model and validation table (none by default)."""
        self.module_ = module.to(self.device_).eval()
        self.kind_ = _kind_of(module)
        self.history_ = history
        self.best_epoch_ = best_epoch
        self.validation_metrics_ = {f"val_{self.metric}": best_metric} if best_metric is not None else {}
        self.fit_seconds_ = seconds
        self.created_ = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        self.train_ = train
        self.item_item_, self.item_item_model_, self.item_item_table_ = item_item

    def _keep_best_so_far(self, ck: Checkpoint, train: Interactions, why: str) -> None:
        """After an interrupt or divergence, become the best model trained so far, if any: of our
        kind, else (NeuMF's pretraining was cut short) the better of the GMF and MLP stages."""
        from ncf.train.checkpoint import describe_best

        kinds = [st.kind for st in self.plan()][::-1]  # the final kind first, then the latest stage
        found = [b for b in (ck.best_so_far(k) for k in kinds) if b is not None]
        if not found:
            return
        best = found[0]
        if best.kind != self.model:  # both pretraining stages may have started: keep the better one
            best = max(found, key=lambda b: -1.0 if b.metric is None else b.metric)
        n_users, n_items = train.shape
        module = self._build(best.kind, n_users, n_items)
        module.load_state_dict(best.state)
        self._set_fitted(module, train, {}, best.epoch, best.metric, 0.0)
        kept = describe_best(best)
        if best.kind != self.model:
            kept += f"; a {best.kind.upper()} model: {self.model.upper()}'s pretraining did not finish"
        self.interrupted_ = {"reason": why, "kept": kept}

    # -- scoring ---------------------------------------------------------------------
    def score_device(self) -> torch.device:
        return self.device_

    def bytes_per_user(self) -> int:
        width = max(self.layers[1] if len(self.layers) > 1 else self.layers[0], 1) if self.kind_ != "gmf" else 1
        return self.train_.n_items * 4 * (3 + 2 * width + (4 if self.item_item_ > 0 else 0))

    def score_block(self, users: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self._blended(
                lambda: self.module_.score_block(users), lambda: self.item_item_model_.score_block(users)
            )

    def _blended(self, towers: Callable[[], torch.Tensor], ease: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The towers' scores with the item-item term blended in (:func:`ncf.item_item.blend`); each
        part is computed only when it carries weight (the towers are skipped at ``item_item_ == 1``)."""
        from ncf.item_item import blend, standardise

        w = self.item_item_
        if w <= 0:
            return towers()
        if w >= 1:  # (1 - w) * z(towers) + w * z(EASE) is exactly z(EASE) here
            return standardise(ease()).to(self.device_)
        return blend(towers(), ease(), w)

    def candidate_scores(self, users: torch.Tensor) -> torch.Tensor:
        """First stage of two-stage ranking: NeuMF's GMF dot product plus an item prior.

        The GMF term alone has no item bias, and NeuMF learns item popularity in its MLP
        tower, so GMF-only candidates miss the popular items the full model ranks first
        (recall@10 against exact 0.02 with 200 candidates on ML-1M-shaped data). The prior
        is the MLP term for the average user embedding, one (n_items,) vector per call.
        A GMF model's full score is already a dot product; MLP has no dot-product part.
        """
        m = self.module_
        if not isinstance(m, (ncf_nn.GMF, ncf_nn.NeuMF)):
            raise ConfigError("recommend(candidates=...) needs a GMF part; model='mlp' has none, rank exactly instead")
        if isinstance(m, ncf_nn.GMF) or self.item_item_ > 0:  # the item-item term needs each user's full row
            return self.score_block(users)
        with torch.inference_mode():
            w = m.predict.weight.squeeze(0)
            w_g, w_m = w[: m.factors], w[m.factors :]
            prior = m.tower.block_from(m.tower.user.weight.mean(0, keepdim=True), None, head=lambda h: h @ w_m)[0]
            return torch.addmm(prior, m.gmf_user(users) * w_g, m.gmf_item.weight.T)

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if self.item_item_ > 0:  # blended scores are standardised over each user's row: gather from it
            return super().score_pairs(users, items)
        with torch.inference_mode():
            out = [self.module_(users[s : s + 65536], items[s : s + 65536]) for s in range(0, len(users), 65536)]
            return torch.cat(out) if out else torch.zeros(0, device=users.device)

    def item_vectors(self) -> np.ndarray:
        with torch.inference_mode():
            return self.module_.item_vectors().float().cpu().numpy()

    def _explain_scores(self, stacked: sp.csr_matrix) -> torch.Tensor:
        """With the item-item term, each part is standardised by the FULL history's mean and
        deviation (row 0) for every leave-one-out row: row 0 is exactly the model's score, and an
        item's removal moves the score by what it moves each part. Re-standardising each row on
        its own would cancel EASE's removals (a profile one item smaller scales EASE's scores down
        evenly, which standardising undoes), so explanations would say little."""
        from ncf.item_item import standardise_by_first_row as fixed_z

        if self.item_item_ <= 0:
            return self.history_scores(stacked)
        w = self.item_item_
        ease = fixed_z(self.item_item_model_.history_scores(stacked)).to(self.device_)
        if w >= 1:
            return ease.float()
        return ((1 - w) * fixed_z(self._tower_history_scores(stacked)) + w * ease).float()

    def _tower_history_scores(self, profiles: sp.csr_matrix) -> torch.Tensor:
        """The towers' fold-in scores of ``profiles`` (:mod:`ncf.foldin`), without the item-item term."""
        from ncf.foldin import FoldIn, ncf_history_scores

        cfg = getattr(self, "foldin_", None) or FoldIn(
            steps=NCF_FOLDIN_STEPS, lr=NCF_FOLDIN_LR, l2=float(self.weight_decay)
        )
        return ncf_history_scores(
            self.module_,
            profiles,
            loss=self.loss,
            negatives=self.negatives,
            cfg=cfg,
            seed=self.seed_,
            device=self.device_,
        )

    def history_scores(self, profiles: sp.csr_matrix) -> torch.Tensor:
        """Fold histories in (new user embedding rows, every tower frozen) and score every item.

        A few deterministic full-batch Adam steps on this model's own loss, in expectation over
        its negatives, from the mean user embedding; see :mod:`ncf.foldin` (``foldin_`` holds the
        settings, :class:`ncf.foldin.FoldIn`).
        """
        self.check_fitted()
        # the item-item term scores a history directly, as it scores a training user
        return self._blended(
            lambda: self._tower_history_scores(profiles), lambda: self.item_item_model_.history_scores(profiles)
        )

    # -- persistence -----------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save config, id maps, seen interactions and weights to ``path`` (a folder); atomic."""
        from ncf.persist import save_bundle

        return save_bundle(path, **self.bundle_parts(), train=self.train_)

    def bundle_parts(self) -> dict[str, Any]:
        """What :func:`ncf.persist.save_bundle` writes besides the data: model class, config, weights, extra."""
        self.check_fitted()
        extra = {
            "created": self.created_,
            "validation_metrics": self.validation_metrics_,
            "best_epoch": self.best_epoch_,
            "fit_seconds": self.fit_seconds_,
            "data_fingerprint": self.train_.fingerprint(),
            "seed": self.seed_,
            "recency": getattr(self, "recency_", None),
            **({"leaderboard": self.leaderboard_} if getattr(self, "leaderboard_", None) else {}),
            **({"item_item": self.blend_info()} if self.item_item_ > 0 else {}),
            **({"updates": h} if (h := update_history(self)) else {}),
        }
        weights = dict(self.module_.state_dict())
        if getattr(self, "recency_", None) is not None:  # how fold-in weighs a history, as training did
            weights[RECENCY_TENSOR] = torch.tensor([float(self.recency_)], dtype=torch.float64)
        if self.item_item_ > 0:
            ease = self.item_item_model_
            weights[ITEM_ITEM_WEIGHT] = torch.tensor(float(self.item_item_), dtype=torch.float64)
            weights[ITEM_ITEM_B] = torch.from_numpy(ease.B_)
            weights[ITEM_ITEM_L2] = torch.tensor(float(ease.l2), dtype=torch.float64)
            if ease.recency_ is not None:
                weights[ITEM_ITEM_RECENCY] = torch.tensor(float(ease.recency_), dtype=torch.float64)
        return {
            "model_class": "NCF",
            "config": {**self.get_params(), "model": self.kind_},
            "weights": weights,
            "extra": extra,
        }

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: str | torch.device | None = "cpu") -> NCF:
        """Load a bundle saved by :meth:`save`; runs no code from the files."""
        from ncf.persist import load_bundle

        return cls.from_bundle(load_bundle(path), device=device)  # the metadata is checked (types) there

    @classmethod
    def from_bundle(cls, b: Bundle, *, device: str | torch.device | None = "cpu") -> NCF:
        """Build from a loaded, checksum-verified :class:`ncf.persist.Bundle` (or a blend's component of one)."""
        from ncf.persist import check_weights, stored_half_life

        if b.model_class != "NCF":
            raise BundleError(f"{b.path} holds a {b.model_class} model, not NCF; load it with ncf.load_model()")
        names = {f.name for f in declared(cls)}
        params = {k: v for k, v in b.config.items() if k in names}
        est = cls(**params, device=device)
        try:
            est._validate()
        except ConfigError as e:
            raise BundleError(f"{b.path}: stored config is invalid ({e})") from None
        est.device_ = resolve_device(device)
        est.seed_ = int(b.extra.get("seed") or 0)
        n_users, n_items = b.train.shape
        if est.model != "gmf" and len(list(est.layers)) > len(b.weights):  # each layer has tensors: a cheap bound
            raise BundleError(
                f"{b.path}: stored config has {len(list(est.layers))} layers but the bundle holds only "
                f"{len(b.weights)} weight tensors; the file is corrupt or was edited"
            )
        # The shapes the config implies, from a skeleton on the meta device (no memory): a config edited
        # to factors=1e9 or layers=[1e6]*50 is refused here instead of allocating terabytes.
        try:
            with torch.device("meta"):
                skeleton = est._build(est.model, n_users, n_items)
        except (RuntimeError, ValueError, TypeError, OverflowError) as e:
            raise BundleError(f"{b.path}: stored config cannot describe a model ({one_line(e)[:200]})") from None
        expected = {k: (tuple(v.shape), v.dtype) for k, v in skeleton.state_dict().items()}
        weights = dict(b.weights)
        # The item-item term is saved when its weight (given, or chosen on validation) is > 0.
        has_ii = ITEM_ITEM_WEIGHT in weights or (est.item_item != "auto" and float(est.item_item) > 0)
        if has_ii:
            expected[ITEM_ITEM_WEIGHT] = ((), torch.float64)
            expected[ITEM_ITEM_B] = ((n_items, n_items), torch.float32)
            expected[ITEM_ITEM_L2] = ((), torch.float64)
            if ITEM_ITEM_RECENCY in weights:
                expected[ITEM_ITEM_RECENCY] = ((), torch.float64)
        if RECENCY_TENSOR in weights:
            expected[RECENCY_TENSOR] = ((1,), torch.float64)
        check_weights(b.path, weights, expected, f" and id maps ({n_users} users, {n_items} items)")
        if not all(torch.isfinite(t).all() for t in weights.values()):
            raise BundleError(f"{b.path}: weights contain NaN or inf; the bundle is corrupt")
        ease, ii_weight = None, 0.0
        if has_ii:
            ii_weight = float(weights.pop(ITEM_ITEM_WEIGHT))
            given = None if est.item_item == "auto" else float(est.item_item)
            if not 0 < ii_weight <= 1 or (given is not None and ii_weight != given):
                raise BundleError(
                    f"{b.path}: {ITEM_ITEM_WEIGHT} == {ii_weight}, must be in (0, 1]"
                    + (f" and equal the stored item_item {given}" if given is not None else "")
                    + "; the bundle is corrupt or was edited"
                )
            ease = est._restore_item_item(
                b.path,
                weights.pop(ITEM_ITEM_B),
                weights.pop(ITEM_ITEM_L2),
                weights.pop(ITEM_ITEM_RECENCY, None),
                b.train,
            )
        est.recency_ = stored_half_life(b, weights.pop(RECENCY_TENSOR, None), from_metadata=True)
        module = est._build(est.model, n_users, n_items)
        module.load_state_dict(weights, strict=True)
        est.module_ = module.to(est.device_).eval()
        est.kind_ = est.model
        est.train_ = b.train
        est.history_ = {}
        est.created_ = b.extra.get("created", "")
        est.validation_metrics_ = b.extra.get("validation_metrics", {})
        est.best_epoch_ = b.extra.get("best_epoch", 0)
        est.fit_seconds_ = b.extra.get("fit_seconds", 0.0)
        est.bundle_extra_ = b.extra
        est.item_item_, est.item_item_model_ = ii_weight, ease
        est.item_item_table_ = {}
        return est

    def _restore_item_item(
        self,
        path: Path,
        b_matrix: torch.Tensor,
        l2: torch.Tensor,
        half_life: torch.Tensor | None,
        train: Interactions,
    ) -> Any:
        """The item-item term's EASE model from its saved matrix, L2 and recency half-life (checked)."""
        from ncf.baselines.ease import EASE

        if not float(l2) > 0:
            raise BundleError(f"{path}: {ITEM_ITEM_L2} == {float(l2)}, must be > 0; the bundle is corrupt")
        recency = None if half_life is None else float(half_life)
        if recency is not None and not recency > 0:
            raise BundleError(f"{path}: {ITEM_ITEM_RECENCY} == {recency}, must be > 0; the bundle is corrupt")
        if recency is not None and train.timestamps is None:
            raise BundleError(f"{path}: the item-item term uses recency but the bundle holds no timestamps")
        ease = EASE(l2=float(l2), recency=recency, recency_floor=self.recency_floor)
        ease.recency_ = recency
        ease._restore({"B": b_matrix}, train)
        ease.train_ = train
        return ease

    def blend_info(self) -> dict[str, Any]:
        """The item-item blend, for the bundle and ``GET /v1/model``: components, weights, validation table."""
        return {
            "components": {self.kind_: round(1.0 - self.item_item_, 4), "ease": round(self.item_item_, 4)},
            "ease_l2": float(self.item_item_model_.l2),
            "chosen_on": "validation"
            if self.item_item_table_
            else ("given" if self.item_item != "auto" else "default"),
            **({f"validation_{self.metric}": self.item_item_table_} if self.item_item_table_ else {}),
        }

    def __repr__(self) -> str:
        p = self.get_params()
        shown = ", ".join(
            f"{k}={v!r}" for k, v in p.items() if k in ("model", "factors", "layers", "negatives", "epochs")
        )
        return f"NCF({shown})"


def _kind_of(module: torch.nn.Module) -> str:
    return {ncf_nn.GMF: "gmf", ncf_nn.MLP: "mlp", ncf_nn.NeuMF: "neumf"}[type(module)]
