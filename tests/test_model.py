"""NCF's own behaviour: its training loop, early stopping, refit, divergence, parameter checks.

What every model shares (recommend, filters, save/load, unknown ids, raw ids, refitting,
seeds, declared parameters) is the contract in test_contract.py, run on every NCF variant
and every baseline. Data and settings: tests/checkerboard.py.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import ncf.evaluation
import ncf.nn
import ncf.train.fused
import ncf.train.steps
import ncf.train.trainer
from checkerboard import BASE, NCF_SPECS, TEST, TRAIN
from ncf import NCF
from ncf.errors import ConfigError, ModelDivergedError
from ncf.evaluation import evaluate_scores

SPECS = NCF_SPECS
NCF_NAMES = list(NCF_SPECS)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def make(name: str, **overrides):
    return NCF(**{**SPECS[name], **overrides})


def quick(name: str, **overrides):
    """A short-training estimator for tests about mechanics, not quality."""
    return make(name, **{"epochs": 2} | overrides)


ncf_models = pytest.mark.parametrize("name", NCF_NAMES)


def _stage_histories(model: NCF) -> list[list[dict]]:
    return [h["history"] for h in model.history_.values()]


# -- errors -------------------------------------------------------------------------------
BAD_PARAMS = [
    ({"factors": 0}, "factors"),
    ({"layers": (15, 8)}, "layers"),
    ({"layers": ()}, "layers"),
    ({"negatives": 0}, "negatives"),
    ({"negatives": "some"}, "negatives"),
    ({"dropout": 1.0}, "dropout"),
    ({"dropout": -0.1}, "dropout"),
    ({"learning_rate": 0}, "learning_rate"),
    ({"learning_rate": float("nan")}, "learning_rate"),
    ({"model": "svd"}, "model"),
    ({"loss": "hinge"}, "loss"),
    ({"epochs": 0}, "epochs"),
    ({"batch_size": 0}, "batch_size"),
    ({"alpha": 1.5}, "alpha"),
    ({"metric": "f1@10"}, "metric"),
    ({"pretrain": "yes"}, "pretrain"),
    ({"negatives": "all", "loss": "bpr"}, "negatives"),
    ({"negatives": "all", "loss": "softmax"}, "negatives"),
    ({"recency": 0}, "recency"),
    ({"recency": "latest"}, "recency"),
    ({"recency": float("inf")}, "recency"),
    ({"recency_floor": 1.5}, "recency_floor"),
]


@pytest.mark.parametrize(("params", "named"), BAD_PARAMS, ids=[n + str(i) for i, (_, n) in enumerate(BAD_PARAMS)])
def test_bad_params_raise_config_error_naming_them(params, named):
    with pytest.raises(ConfigError, match=named):
        NCF(**{**BASE, **params}).fit(TRAIN, validation=None)


# -- raw ids ------------------------------------------------------------------------------
# -- fitting ------------------------------------------------------------------------------
def _weights(model: NCF) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.module_.state_dict().items()}


@ncf_models
def test_validation_none_trains_exactly_epochs(name):
    calls = []
    model = quick(name, epochs=3, patience=0, callbacks=[lambda epoch, logs: calls.append(epoch)])
    model.fit(TRAIN, validation=None)
    stages = _stage_histories(model)
    assert all([h["epoch"] for h in stage] == [1, 2, 3] for stage in stages)
    assert calls == [1, 2, 3] * len(stages)
    assert model.best_epoch_ == 3 and model.validation_metrics_ == {}
    assert all(np.isfinite(h["loss"]) for stage in stages for h in stage)


@ncf_models
def test_callback_returning_true_stops_training(name):
    seen = []

    def stop_at_2(epoch, logs):
        seen.append((epoch, logs["loss"]))
        return epoch == 2

    model = quick(name, epochs=10, callbacks=[stop_at_2]).fit(TRAIN, validation=None)
    stages = _stage_histories(model)
    assert all(len(stage) == 2 for stage in stages)  # every stage (pretraining ones too) stops at 2
    assert [e for e, _ in seen] == [1, 2] * len(stages)
    assert all(h["stopped_early"] for h in model.history_.values())
    # a callback returning a truthy non-True value does not stop
    model = quick(name, epochs=3, callbacks=[lambda e, logs: 1]).fit(TRAIN, validation=None)
    assert all(len(stage) == 3 for stage in _stage_histories(model))


@pytest.mark.parametrize("name", [n for n in NCF_NAMES if n != "neumf-pretrain"])
def test_early_stopping_restores_the_best_epoch(name, monkeypatch):
    # Script the validation metric: it peaks at epoch 2, then falls; patience=1 stops after
    # epoch 4. The fake evaluation also snapshots the weights it was asked to score (the
    # score function is the module's bound score_block), so we can check which epoch's
    # weights the fitted model ends with.
    script = [0.1, 0.5, 0.3, 0.2, 0.9, 0.9]
    snapshots = []

    def fake_eval(score_fn, pair_fn, train, test, *, k=10, metrics=("ndcg",), **kw):
        snapshots.append(copy.deepcopy(score_fn.__self__.state_dict()))
        return {"protocol": "full", f"{metrics[0]}@{k}": script[len(snapshots) - 1]}

    monkeypatch.setattr(ncf.train.trainer, "evaluate_scores", fake_eval)
    observed = []
    model = quick(  # item_item=0: the towers' own validation metric (the blend is chosen after training)
        name,
        epochs=6,
        patience=1,
        refit=False,
        item_item=0.0,
        callbacks=[lambda e, logs: observed.append(logs["val_ndcg@10"])],
    )
    model.fit(TRAIN, validation=TEST)
    assert observed == [0.1, 0.5, 0.3, 0.2]
    assert model.best_epoch_ == 2 and model.validation_metrics_ == {"val_ndcg@10": 0.5}
    (hist,) = model.history_.values()
    assert hist["stopped_early"] and hist["best_epoch"] == 2
    final = _weights(model)
    for key, value in snapshots[1].items():
        assert torch.equal(final[key], value), key
    assert any(not torch.equal(final[k], v) for k, v in snapshots[3].items())  # not the last epoch's


def test_early_stopping_restores_best_epoch_for_real():
    # Unscripted: a high learning rate makes the validation metric wander; the restored
    # model must score exactly the best value the callback saw.
    observed = []
    model = NCF(
        **{**SPECS["neumf"], "learning_rate": 0.05, "epochs": 8, "patience": 2, "refit": False, "item_item": 0.0},
        callbacks=[lambda e, logs: observed.append(logs["val_ndcg@10"])],
    ).fit(TRAIN, validation=TEST)
    best = max(observed)
    assert model.best_epoch_ == observed.index(best) + 1
    res = evaluate_scores(model.score_block, None, TRAIN, TEST, k=10, metrics=["ndcg"])
    assert res["ndcg@10"] == pytest.approx(best, abs=1e-12)
    assert model.validation_metrics_["val_ndcg@10"] == pytest.approx(best)


@ncf_models
def test_non_finite_loss_raises_model_diverged(name, monkeypatch):
    # The autograd path (the fused step is covered below) calls forward_l2 when
    # weight_decay > 0 (the default), forward otherwise.
    monkeypatch.setattr(ncf.train.steps, "supports", lambda *a: False)
    for cls in (ncf.nn.GMF, ncf.nn.MLP, ncf.nn.NeuMF):
        original, original_l2 = cls.forward, cls.forward_l2
        monkeypatch.setattr(cls, "forward", lambda self, u, i, _f=original: _f(self, u, i) * float("nan"))
        monkeypatch.setattr(
            cls, "forward_l2", lambda self, u, i, _f=original_l2: tuple(x * float("nan") for x in _f(self, u, i))
        )
    with pytest.raises(ModelDivergedError, match="learning rate") as e:
        quick(name).fit(TRAIN, validation=None)
    assert "epoch 1" in str(e.value)


def test_divergence_after_a_good_epoch_restores_it(monkeypatch):
    broken = {"on": False}
    original = ncf.nn.NeuMF.forward

    def forward(self, u, i):
        out = original(self, u, i)
        return out * float("inf") if broken["on"] else out

    monkeypatch.setattr(ncf.nn.NeuMF, "forward", forward)
    monkeypatch.setattr(ncf.train.steps, "supports", lambda *a: False)  # the autograd path
    model = quick("neumf", epochs=5, weight_decay=0.0, callbacks=[lambda e, logs: broken.update(on=True)])
    with pytest.raises(ModelDivergedError, match="epoch 2.*restored"):
        model.fit(TRAIN, validation=TEST)
    # The estimator keeps the best model so far (epoch 1), usable and savable.
    assert model.is_fitted and model.interrupted_["reason"] == "diverged"
    assert model.best_epoch_ == 1 and "epoch 1" in model.interrupted_["kept"]
    assert all(torch.isfinite(p).all() for p in model.module_.parameters())


def test_fused_step_divergence_restores_the_good_epoch(monkeypatch):
    broken = {"on": False}
    original = ncf.train.fused.FusedStep.__call__  # both fused variants step through __call__

    def step(self, batch):
        out = original(self, batch)
        return out * float("inf") if broken["on"] else out

    monkeypatch.setattr(ncf.train.fused.FusedStep, "__call__", step)
    model = quick("neumf", epochs=5, callbacks=[lambda e, logs: broken.update(on=True)])
    with pytest.raises(ModelDivergedError, match="epoch 2.*restored"):
        model.fit(TRAIN, validation=TEST)
    assert model.is_fitted and model.interrupted_["reason"] == "diverged"  # the good epoch is kept
    assert model.best_epoch_ == 1


@pytest.mark.parametrize("name", ["neumf", "neumf-pretrain"])
def test_tensorboard_writes_event_files(name, tmp_path):
    pytest.importorskip("tensorboard")
    quick(name, tensorboard=tmp_path / "tb").fit(TRAIN, validation=TEST)
    events = list((tmp_path / "tb").rglob("events.out.tfevents*"))
    assert events and all(f.stat().st_size > 0 for f in events)


def test_refit_retrains_on_all_of_train_for_the_chosen_epochs():
    # With refit (off by default), early stopping picks the epoch count on the carved-out
    # validation part, then the model is trained again on all of train for that many epochs.
    model = NCF(**{**SPECS["neumf"], "epochs": 6, "patience": 1, "refit": True}).fit(TRAIN)
    hist = model.history_
    assert set(hist) == {"neumf", "neumf_refit"}
    assert len(hist["neumf_refit"]["history"]) == hist["neumf"]["best_epoch"] == model.best_epoch_
    assert model.train_ is TRAIN
    no_refit = NCF(**{**SPECS["neumf"], "epochs": 6, "patience": 1, "refit": False}).fit(TRAIN)
    assert set(no_refit.history_) == {"neumf"}
    assert model.validation_metrics_ == no_refit.validation_metrics_  # selection run is identical
