"""Every model ncf knows, by name: the NCF family and the baselines, built the same way.

``make_model("neumf", {...}, seed)`` and ``make_model("ease", {"l2": 300.0}, seed)`` return an
unfitted :class:`~ncf.base.Recommender`; the benchmark, ``ncf train --model`` and
:func:`ncf.auto.select_model` all build models here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ncf.base import Recommender
from ncf.baselines import BASELINES, make_baseline
from ncf.errors import ConfigError
from ncf.model import NCF
from ncf.params import declared

__all__ = ["NCF_MODELS", "check_models", "known_models", "make_model", "model_params"]

NCF_MODELS = ("neumf", "gmf", "mlp")


def known_models() -> tuple[str, ...]:
    return (*NCF_MODELS, *BASELINES)


def _key(name: Any) -> str:
    return str(name).strip().lower().replace("_", "-")


def check_models(models: Sequence[str]) -> list[str]:
    """Normalised model names; unknown or repeated names raise ConfigError listing the known ones."""
    models = [_key(m) for m in models if str(m).strip()]
    if not models:
        raise ConfigError("no models given; pick from " + ", ".join(known_models()))
    bad = [m for m in models if m not in known_models()]
    if bad:
        raise ConfigError(f"unknown model(s) {bad}; known models: {', '.join(known_models())}")
    if len(set(models)) != len(models):
        raise ConfigError(f"models {models} name a model twice")
    return models


def _class_of(name: str) -> type:
    if name in NCF_MODELS:
        return NCF
    import ncf.baselines as B

    return getattr(B, BASELINES[name][0])


def model_params(name: str) -> list[str]:
    """The hyper-parameters ``name`` takes (its constructor's keywords)."""
    return [f.name for f in declared(_class_of(_key(name))) if f.name != "model"]


def make_model(name: str, params: Mapping[str, Any] | None = None, seed: int | None = None) -> Recommender:
    """A fresh, unfitted model: ``NCF(model=name)`` or a baseline, seeded with ``seed`` unless
    ``params`` sets a seed (baselines without randomness take none)."""
    (name,) = check_models([name])
    params = dict(params or {})
    if name in NCF_MODELS:
        if "model" in params and params["model"] != name:
            raise ConfigError(f"params for {name!r} set model={params['model']!r}; use that model's name instead")
        params.pop("model", None)
        if seed is not None:
            params.setdefault("seed", seed)
        return NCF(model=name, **params)
    try:
        takes_seed = "seed" in model_params(name)
    except Exception:  # noqa: BLE001 - an optional library is missing: make_baseline says how to install it
        takes_seed = False
    if takes_seed and seed is not None:
        params.setdefault("seed", seed)
    return make_baseline(name, **params)
