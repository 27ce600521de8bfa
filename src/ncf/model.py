"""NCF: the estimator users hold (fit / recommend / similar_items / score / save / load)."""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ncf import nn as ncf_nn
from ncf.base import Recommender
from ncf.data.interactions import Interactions
from ncf.errors import BundleError, ConfigError, DataError, ModelDivergedError, one_line
from ncf.training import Callback, TrainConfig, TrainResult, train_module

if TYPE_CHECKING:
    from ncf.checkpoint import Checkpoint

MODELS = ("gmf", "mlp", "neumf")
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
    epochs, batch_size, learning_rate:
        Training length and Adam settings (SparseAdam for embeddings when ``sparse``).
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
        pretraining), then fine-tune at a tenth of the learning rate. On by default: with
        the default L2 it was +10 % NDCG@10 on validation over one-stage NeuMF on both
        ML-100k protocols, at 2-4x the fit time (benchmarks/RESULTS.md, round 5).
    refit:
        After early stopping picked the number of epochs on the validation part, train
        again on all of ``train`` for that many epochs (like scikit-learn's ``refit``).
        Costs a second training run; worth it when validation holds back informative
        interactions, as leave-one-out-by-time does (each user's most recent one).
    metric:
        Validation metric for early stopping, e.g. ``"ndcg@10"``, ``"hr@10"``.
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

    def __init__(
        self,
        model: str = "neumf",
        factors: int = 32,
        layers: Sequence[int] = (64, 32, 16, 8),
        negatives: int | str = 8,
        loss: str = "bce",
        epochs: int = 30,
        batch_size: int = 8192,
        learning_rate: float = 0.005,
        weight_decay: float = 0.01,
        dropout: float = 0.0,
        patience: int = 2,
        pretrain: bool = True,
        alpha: float = 0.85,
        refit: bool = True,
        metric: str = "ndcg@10",
        recency: float | str | None = "auto",
        recency_floor: float = 0.1,
        sparse: bool = True,
        seed: int | None = None,
        lr_scaling: str = "none",
        lr_reference_batch: int = 1024,
        warmup_epochs: float = 0.0,
        compile: bool = False,
        device: str | torch.device | None = None,
        verbose: bool = False,
        tensorboard: str | os.PathLike[str] | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.model = model
        self.factors = factors
        self.layers = layers
        self.negatives = negatives
        self.loss = loss
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.patience = patience
        self.pretrain = pretrain
        self.alpha = alpha
        self.refit = refit
        self.metric = metric
        self.recency = recency
        self.recency_floor = recency_floor
        self.sparse = sparse
        self.seed = seed
        self.lr_scaling = lr_scaling
        self.lr_reference_batch = lr_reference_batch
        self.warmup_epochs = warmup_epochs
        self.compile = compile
        self.device = device
        self.verbose = verbose
        self.tensorboard = tensorboard
        self.callbacks = callbacks

    # -- parameters ------------------------------------------------------------------
    PARAMS = (
        "model", "factors", "layers", "negatives", "loss", "epochs", "batch_size", "learning_rate",
        "weight_decay", "dropout", "patience", "pretrain", "alpha", "refit", "metric", "recency", "recency_floor",
        "sparse", "seed", "lr_scaling", "lr_reference_batch", "warmup_epochs", "compile",
    )  # fmt: skip

    def get_params(self) -> dict[str, Any]:
        p = {k: getattr(self, k) for k in self.PARAMS}
        p["layers"] = list(p["layers"])
        return p

    def _validate(self) -> None:
        def need_int(name: str, lo: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ConfigError(f"{name} == {v!r}, must be an integer >= {lo}")

        if self.model not in MODELS:
            raise ConfigError(f"model == {self.model!r}, must be one of {', '.join(MODELS)}")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss == {self.loss!r}, must be one of {', '.join(LOSSES)}")
        need_int("factors", 1)
        need_int("epochs", 1)
        need_int("batch_size", 1)
        need_int("patience", 0)
        layers = list(self.layers)
        if not layers or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in layers):
            raise ConfigError(f"layers == {self.layers!r}, must be positive integers, e.g. (64, 32, 16, 8)")
        if layers[0] % 2:
            raise ConfigError(f"layers[0] == {layers[0]}, must be even: it is the [user; item] embedding size")
        if self.negatives == "all":
            if self.loss != "bce":
                raise ConfigError(
                    f"negatives='all' needs loss='bce'; {self.loss!r} contrasts each positive with sampled negatives"
                )
        elif isinstance(self.negatives, bool) or not isinstance(self.negatives, (int, np.integer)) or self.negatives < 1:
            raise ConfigError(f"negatives == {self.negatives!r}, must be an integer >= 1 or 'all'")
        for name, lo, hi, lo_open in (
            ("learning_rate", 0.0, 10.0, True),
            ("weight_decay", 0.0, 1e6, False),
            ("dropout", 0.0, 1.0, False),
            ("alpha", 0.0, 1.0, False),
            ("recency_floor", 0.0, 1.0, False),
        ):
            v = getattr(self, name)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
            ok = ok and (v > lo if lo_open else v >= lo) and (v < hi if name == "dropout" else v <= hi)
            if not ok:
                lo_b = "(" if lo_open else "["
                hi_b = ")" if name == "dropout" else "]"
                raise ConfigError(f"{name} == {v!r}, must be in {lo_b}{lo}, {hi}{hi_b}")
        r = self.recency
        if not (r is None or r == "auto") and (
            isinstance(r, bool) or not isinstance(r, (int, float, np.integer, np.floating)) or not np.isfinite(r) or r <= 0
        ):
            raise ConfigError(f"recency == {r!r}, must be None, 'auto' or a half-life > 0 (in interactions)")
        base = str(self.metric).split("@")[0]
        if base not in ("hr", "precision", "recall", "ndcg", "map", "mrr", "auc"):
            raise ConfigError(f"metric == {self.metric!r}, must be like 'ndcg@10', 'hr@10', 'recall@20', 'mrr' or 'auc'")
        if self.lr_scaling not in ("none", "sqrt", "linear"):
            raise ConfigError(f"lr_scaling == {self.lr_scaling!r}, must be 'none', 'sqrt' or 'linear'")
        need_int("lr_reference_batch", 1)
        w = self.warmup_epochs
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not np.isfinite(w) or w < 0:
            raise ConfigError(f"warmup_epochs == {w!r}, must be a number >= 0 (epochs of linear learning-rate warm-up)")
        if self.compile and self.sparse:
            raise ConfigError(
                "compile=True needs sparse=False: torch.compile (inductor) cannot compile sparse embedding gradients"
            )
        if not isinstance(self.pretrain, (bool, np.bool_)):
            raise ConfigError(f"pretrain == {self.pretrain!r}, must be True or False")

    # -- fitting ---------------------------------------------------------------------
    def _config(self) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=float(self.learning_rate),
            weight_decay=float(self.weight_decay),
            negatives=self.negatives if self.negatives == "all" else int(self.negatives),
            loss=self.loss,
            patience=self.patience,
            metric=self.metric,
            seed=self.seed_,
            recency=self.recency_,
            recency_floor=float(self.recency_floor),
            lr_scaling=self.lr_scaling,
            lr_reference_batch=int(self.lr_reference_batch),
            warmup_epochs=float(self.warmup_epochs),
            compile=bool(self.compile),
        )

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
        """One training pipeline (GMF + MLP + fused NeuMF with pretraining, else one model)."""
        torch.manual_seed(self.seed_)
        n_users, n_items = data.shape
        kw = dict(device=self.device_, callbacks=self.callbacks, progress=self.verbose, writer=writer)

        def conf(tag: str, **over: Any) -> TrainConfig:
            c = {**cfg.__dict__, **over}
            if epochs is not None:
                c["epochs"] = epochs[tag]
            return TrainConfig(**c)

        suffix = "" if epochs is None else " (refit)"

        def stage(kind: str) -> Any:  # each stage has its own checkpoint file: gmf, mlp, neumf, gmf_refit, ...
            return ck.stage(kind + ("" if epochs is None else "_refit"), kind)

        if self.model == "neumf" and self.pretrain:
            gmf = self._build("gmf", n_users, n_items)
            res_g = train_module(gmf, data, val, conf("gmf"), tag="gmf" + suffix, checkpoint=stage("gmf"), **kw)
            mlp = self._build("mlp", n_users, n_items)
            res_m = train_module(mlp, data, val, conf("mlp"), tag="mlp" + suffix, checkpoint=stage("mlp"), **kw)
            module = ncf_nn.NeuMF.from_pretrained(gmf, mlp, self.alpha, dropout=self.dropout, sparse=self.sparse)
            # The paper fine-tunes the fused model gently (it switches to SGD); a smaller
            # Adam step keeps the pretrained towers from being undone in the first epoch.
            res = train_module(
                module, data, val, conf("neumf", learning_rate=cfg.learning_rate * 0.1), tag="neumf" + suffix,
                checkpoint=stage("neumf"), **kw,
            )  # fmt: skip
            return module, res, {"gmf": res_g.to_dict(), "mlp": res_m.to_dict(), "neumf": res.to_dict()}
        module = self._build(self.model, n_users, n_items)
        res = train_module(
            module, data, val, conf(self.model), tag=self.model + suffix, checkpoint=stage(self.model), **kw
        )
        return module, res, {self.model: res.to_dict()}

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
        :mod:`ncf.checkpoint`); ``resume=True`` continues the run found there, after a
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
        from ncf.checkpoint import Checkpoint

        self._validate()
        if not isinstance(train, Interactions):
            raise DataError(f"train must be an ncf Interactions (use ncf.load_interactions), got {type(train).__name__}")
        if len(train) == 0:
            raise DataError("train has no interactions; nothing to learn from")
        for attr in ("module_", "history_", "validation_metrics_", "train_", "interrupted_"):
            self.__dict__.pop(attr, None)
        self.seed_ = int(self.seed) if self.seed is not None else int(np.random.SeedSequence().entropy % (2**31))
        self.device_ = resolve_device(self.device)
        self.recency_ = _resolve_recency(self.recency, train)
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
            how, n, fraction = _validation_rule(train)
            fit_data, val = split.carve_validation(train, how, n=n, fraction=fraction, seed=self.seed_)
            val = val if len(val) else None
        elif validation is None:
            val = None
        elif isinstance(validation, Interactions):
            val = validation.reindex(train.user_map, train.item_map)
        else:
            raise ConfigError(f"validation must be 'auto', an Interactions, or None; got {type(validation).__name__}")

        writer = None
        from ncf.distributed import context

        if self.tensorboard is not None and context().is_main:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError("tensorboard logging needs the tensorboard package: pip install tensorboard") from None
            writer = SummaryWriter(str(self.tensorboard))
        cfg = self._config()
        try:
            with torch.random.fork_rng(devices=[]):
                module, res, history = self._train_stages(fit_data, val, cfg, writer, None, ck)
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
        self._set_fitted(module, train, history, res.best_epoch, res.best_metric, sum(h["seconds"] for h in history.values()))
        return self

    def _set_fitted(
        self, module: torch.nn.Module, train: Interactions, history: dict[str, Any], best_epoch: int,
        best_metric: float | None, seconds: float,
    ) -> None:  # fmt: skip
        """The learned state of a fit (complete, or the best so far after an interrupt)."""
        self.module_ = module.to(self.device_).eval()
        self.history_ = history
        self.best_epoch_ = best_epoch
        self.validation_metrics_ = {f"val_{self.metric}": best_metric} if best_metric is not None else {}
        self.fit_seconds_ = seconds
        self.created_ = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        self.train_ = train

    def _keep_best_so_far(self, ck: Checkpoint, train: Interactions, why: str) -> None:
        """After an interrupt or divergence, become the best model of our kind trained so far (if any)."""
        from ncf.checkpoint import describe_best

        best = ck.best_so_far(self.model)
        if best is None:
            return
        n_users, n_items = train.shape
        module = self._build(self.model, n_users, n_items)
        module.load_state_dict(best.state)
        self._set_fitted(module, train, {}, best.epoch, best.metric, 0.0)
        self.interrupted_ = {"reason": why, "kept": describe_best(best)}

    # -- scoring ---------------------------------------------------------------------
    def _device(self) -> torch.device:
        return self.device_

    def _bytes_per_user(self) -> int:
        width = max(self.layers[1] if len(self.layers) > 1 else self.layers[0], 1) if self.model != "gmf" else 1
        return self.train_.n_items * 4 * (3 + 2 * width)

    def _score_users(self, users: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.module_.score_block(users)

    def _candidate_scores(self, users: torch.Tensor) -> torch.Tensor:
        """First stage of two-stage ranking: NeuMF's GMF dot product plus an item prior.

        The GMF term alone has no item bias, and NeuMF learns item popularity in its MLP
        tower, so GMF-only candidates miss the popular items the full model ranks first
        (recall@10 against exact 0.02 with 200 candidates on ML-1M-shaped data). The prior
        is the MLP term for the average user embedding, one (n_items,) vector per call.
        A GMF model's full score is already a dot product; MLP has no dot-product part.
        """
        m = self.module_
        if isinstance(m, ncf_nn.GMF):
            return self._score_users(users)
        if not isinstance(m, ncf_nn.NeuMF):
            raise ConfigError("recommend(candidates=...) needs a GMF part; model='mlp' has none, rank exactly instead")
        with torch.inference_mode():
            w = m.predict.weight.squeeze(0)
            w_g, w_m = w[: m.factors], w[m.factors :]
            prior = m.tower.block_from(m.tower.user.weight.mean(0, keepdim=True), None, head=lambda h: h @ w_m)[0]
            return torch.addmm(prior, m.gmf_user(users) * w_g, m.gmf_item.weight.T)

    def _score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            out = [self.module_(users[s : s + 65536], items[s : s + 65536]) for s in range(0, len(users), 65536)]
            return torch.cat(out) if out else torch.zeros(0, device=users.device)

    def _item_vectors(self) -> np.ndarray:
        with torch.inference_mode():
            return self.module_.item_vectors().float().cpu().numpy()

    # -- persistence -----------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save config, id maps, seen interactions and weights to ``path`` (a folder); atomic."""
        from ncf.persist import save_bundle

        self._check_fitted()
        extra = {
            "created": self.created_,
            "validation_metrics": self.validation_metrics_,
            "best_epoch": self.best_epoch_,
            "fit_seconds": self.fit_seconds_,
            "data_fingerprint": self.train_.fingerprint(),
            "seed": self.seed_,
        }
        return save_bundle(
            path, model_class="NCF", config=self.get_params(), weights=self.module_.state_dict(),
            train=self.train_, extra=extra,
        )  # fmt: skip

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: str | torch.device | None = "cpu") -> NCF:
        """Load a bundle saved by :meth:`save`; runs no code from the files."""
        from ncf.persist import check_weights, load_bundle

        b = load_bundle(path)  # the metadata is checked against the schema (types) there
        if b.model_class != "NCF":
            raise BundleError(f"{b.path} holds a {b.model_class} model, not NCF; load it with ncf.load_model()")
        params = {k: v for k, v in b.config.items() if k in cls.PARAMS}
        est = cls(**params, device=device)
        try:
            est._validate()
        except ConfigError as e:
            raise BundleError(f"{b.path}: stored config is invalid ({e})") from None
        est.device_ = resolve_device(device)
        est.seed_ = int(b.extra.get("seed") or 0)
        n_users, n_items = b.train.shape
        if est.model != "gmf" and len(list(est.layers)) > len(b.weights):  # each layer has tensors: a cheap bound
            raise BundleError(f"{b.path}: stored config has {len(list(est.layers))} layers but the bundle holds only "
                              f"{len(b.weights)} weight tensors; the file is corrupt or was edited")  # fmt: skip
        # The shapes the config implies, from a skeleton on the meta device (no memory): a config edited
        # to factors=1e9 or layers=[1e6]*50 is refused here instead of allocating terabytes.
        try:
            with torch.device("meta"):
                skeleton = est._build(est.model, n_users, n_items)
        except (RuntimeError, ValueError, TypeError, OverflowError) as e:
            raise BundleError(f"{b.path}: stored config cannot describe a model ({one_line(e)[:200]})") from None
        expected = {k: (tuple(v.shape), v.dtype) for k, v in skeleton.state_dict().items()}
        check_weights(b.path, b.weights, expected, f" and id maps ({n_users} users, {n_items} items)")
        module = est._build(est.model, n_users, n_items)
        module.load_state_dict(b.weights, strict=True)
        if not all(torch.isfinite(t).all() for t in b.weights.values()):
            raise BundleError(f"{b.path}: weights contain NaN or inf; the bundle is corrupt")
        est.module_ = module.to(est.device_).eval()
        est.train_ = b.train
        est.history_ = {}
        est.created_ = b.extra.get("created", "")
        est.validation_metrics_ = b.extra.get("validation_metrics", {})
        est.best_epoch_ = b.extra.get("best_epoch", 0)
        est.fit_seconds_ = b.extra.get("fit_seconds", 0.0)
        est.bundle_extra_ = b.extra
        return est

    def __repr__(self) -> str:
        p = self.get_params()
        shown = ", ".join(f"{k}={v!r}" for k, v in p.items() if k in ("model", "factors", "layers", "negatives", "epochs"))
        return f"NCF({shown})"


#: Half-life (in interactions) that ``recency="auto"`` uses; chosen on validation data (benchmarks/RESULTS.md).
AUTO_RECENCY_HALF_LIFE = 5.0


def _resolve_recency(recency: float | str | None, train: Interactions) -> float | None:
    """The half-life to train with: ``"auto"`` is on exactly when the task is predicting the future.

    That is when ``train`` has timestamps and came from a split by time (leave-one-out,
    temporal, or a holdout of the latest items), or from no split at all; a random
    holdout asks for random past items, where recent ones are no more telling.
    """
    if recency is None:
        return None
    if recency == "auto":
        if train.timestamps is None:
            return None
        sp = train.report.get("split") or {}
        by = (sp.get("params") or {}).get("by")
        if sp.get("protocol") == "holdout" and by == "random":
            return None
        return AUTO_RECENCY_HALF_LIFE
    if train.timestamps is None:
        raise DataError("recency weighting needs timestamps, and train has none; set recency=None or load timestamps")
    return float(recency)


def _validation_rule(train: Interactions) -> tuple[str, int, float | None]:
    """The validation carve-out that mirrors the split that produced ``train``.

    A per-user holdout of n items (random or latest) gets a validation part of n items
    per user by the same rule; leave-one-out and anything else get one item per user,
    the latest when timestamps exist, else a random one.
    """
    sp = train.report.get("split") or {}
    params = sp.get("params") or {}
    by = params.get("by")
    if by not in ("random", "timestamp") or (by == "timestamp" and train.timestamps is None):
        by = "timestamp" if train.timestamps is not None else "random"
    if sp.get("protocol") == "holdout":
        return by, int(params.get("n") or 1), params.get("fraction")
    return by, 1, None
