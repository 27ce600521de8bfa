"""A weighted blend of fitted models, as one model: one fit, one bundle, one ``recommend``.

A user's blended scores are ``sum_j w_j * z(s_j)``: ``s_j`` component ``j``'s scores over every
item, ``z`` standardising a user's row (mean 0, standard deviation 1, :func:`ncf.item_item.standardise`)
so that logits, linear scores and dot products are on one scale, and the weights ``w_j`` (>= 0,
summing to 1) chosen on validation. It is the NCF model's item-item term (:mod:`ncf.item_item`)
generalised to any models ncf knows. :func:`ncf.auto.select_model` builds one when a blend of its
best candidates beats the best single candidate on validation by more than the noise of that
comparison (benchmarks/RESULTS.md, "--model auto with a blend").

Everything a single model does, a blend does through its components: ``fit`` and ``update`` fit
and update each one (all or none: an update that fails leaves the blend as it was); fold-in and
``explain`` score a history with each component and blend the scores, each component seeing the
history weighted as it weighs its training users (its own recency half-life: the profiles carry one
``variant`` per way of weighing, :func:`ncf.base.profile_rows`); ``save`` writes one bundle whose
tensors are the components' (``weights.c0.*``, ``weights.c1.*``, ...) under one checksum, and
``load`` rebuilds each component with its own class's checks. ``similar_items`` and two-stage
``recommend(candidates=)`` have no single item space to use and are refused (as for popularity).
"""

from __future__ import annotations

import copy
import datetime as _dt
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch

from ncf.base import Recommender
from ncf.data.interactions import Interactions
from ncf.errors import BundleError, ConfigError, DataError

if TYPE_CHECKING:
    from ncf.persist import Bundle

__all__ = ["MAX_COMPONENTS", "Blend", "weighting"]

#: Most models one blend holds (ncf.auto blends at most its three best candidates).
MAX_COMPONENTS = 8
#: How far from 1 the stored weights' sum may be: they are written as float64 and summed in another order.
WEIGHT_SUM_TOLERANCE = 1e-6


def weighting(model: Recommender) -> tuple[float | None, float | None]:
    """How a fitted model weighs a history's items: its recency half-life and floor, ``(None, None)`` when
    off. Models that agree on it can be blended and still fold histories in (:meth:`Blend.folds_in`)."""
    half = getattr(model, "recency_", None)
    return (None, None) if half is None else (float(half), float(model.recency_floor))


def _check_weights(weights: Sequence[float]) -> list[float]:
    out = []
    for j, w in enumerate(weights):
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise ConfigError(f"weights[{j}] == {w!r}, must be a finite number >= 0")
        out.append(float(w))
    if not out or abs(sum(out) - 1.0) > WEIGHT_SUM_TOLERANCE:
        raise ConfigError(f"weights {out} must sum to 1 (one per component)")
    return out


class Blend(Recommender):
    """``sum_j weights[j] * z(components[j] scores)``; see the module notes.

    Parameters
    ----------
    components:
        ``(name, model)`` pairs: a name :func:`ncf.make_model` knows (``"neumf"``, ``"ease"``, ...)
        and a model of that kind, fitted or not. All are fitted on the same interactions.
    weights:
        One per component, >= 0, summing to 1.
    """

    name = "blend"
    MODEL_CLASS = "Blend"

    def __init__(self, components: Sequence[tuple[str, Recommender]], weights: Sequence[float]) -> None:
        comps = list(components)
        if not 1 <= len(comps) <= MAX_COMPONENTS:
            raise ConfigError(f"a blend holds 1-{MAX_COMPONENTS} components, got {len(comps)}")
        if len(weights) != len(comps):
            raise ConfigError(f"{len(weights)} weights for {len(comps)} components; give one weight per component")
        for j, c in enumerate(comps):
            if not (isinstance(c, tuple) and len(c) == 2 and isinstance(c[0], str) and isinstance(c[1], Recommender)):
                raise ConfigError(f"components[{j}] must be a (model name, model) pair, got {c!r}")
            if isinstance(c[1], Blend):
                raise ConfigError(f"components[{j}] is itself a blend; give its components instead")
        self.names = [n for n, _ in comps]
        self.models = [m for _, m in comps]
        self.weights = _check_weights(weights)
        self.leaderboard_: list[dict[str, Any]] | None = None
        self.validation_: dict[str, Any] = {}
        if all(m.is_fitted for m in self.models):
            self._adopt_train()

    # -- fitting ---------------------------------------------------------------------
    def _adopt_train(self) -> None:
        """Take the components' shared training data; they must agree on users, items and interactions."""
        first = self.models[0].train_
        for n, m in zip(self.names[1:], self.models[1:]):
            t = m.train_
            if t is not first and (t.shape != first.shape or t.fingerprint() != first.fingerprint()):
                raise DataError(
                    f"blend component {n!r} was fitted on other data ({t.shape[0]} users x {t.shape[1]} items) "
                    f"than {self.names[0]!r} ({first.shape[0]} x {first.shape[1]}); fit every component on the same data"
                )
        self.train_ = first

    def fit(self, train: Interactions) -> Blend:
        """Fit every component on ``train`` (in order); returns self. If one fails, the blend is left
        unfitted (never scoring components fitted on different data)."""
        t0 = time.perf_counter()
        self.__dict__.pop("train_", None)
        for m in self.models:
            m.fit(train)
        self._adopt_train()
        self.fit_seconds_ = time.perf_counter() - t0
        self.created_ = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        return self

    def update(self, new_interactions: Interactions, epochs: int | None = None) -> Blend:
        """Update every component with ``new_interactions`` (see :mod:`ncf.update`); returns self.

        All or none: the components are updated as copies and swapped in together, so an update that
        fails (bad data, divergence) leaves the blend as it was.
        """
        from ncf.update import update_history

        self.check_fitted()
        t0 = time.perf_counter()
        before = update_history(self)
        fresh = [copy.deepcopy(m) for m in self.models]
        for m in fresh:
            m.update(new_interactions, epochs)
        first = fresh[0].train_
        for m in fresh[1:]:  # each merged the same new rows into its own copy: one data set, checked
            if m.train_.shape != first.shape or m.train_.fingerprint() != first.fingerprint():
                raise DataError("the blend's components disagree on the updated data; the blend is unchanged")
        how = "; ".join(f"{n}: {m.updates_[-1]['how']}" for n, m in zip(self.names, fresh))
        self.updates_ = [*before, {**fresh[0].updates_[-1], "seconds": time.perf_counter() - t0, "how": how}]
        self.models = fresh
        self._adopt_train()
        return self

    # -- scoring ---------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {
            "model": "blend",
            "components": [
                {"model": n, "weight": w, "params": m.get_params() if hasattr(m, "get_params") else {}}
                for n, m, w in zip(self.names, self.models, self.weights)
            ],
        }

    def score_device(self) -> torch.device:
        return self.models[0].score_device()

    def bytes_per_user(self) -> int:
        # every live component's scores are held until they are summed, each standardised in float64
        live = [m for m, w in zip(self.models, self.weights) if w > 0]
        return sum(m.bytes_per_user() for m in live) + self.train_.n_items * 4 * (2 + 4 * len(live))

    def _combine(self, parts: Sequence[torch.Tensor], z: Any) -> torch.Tensor:
        device = self.score_device()
        out: torch.Tensor | None = None
        for s, w in zip(parts, self.weights):
            if w > 0:
                term = w * z(s).to(device)
                out = term if out is None else out + term
        assert out is not None  # the weights sum to 1, so one is > 0
        return out.float()

    def score_block(self, users: torch.Tensor) -> torch.Tensor:
        from ncf.item_item import standardise

        self.check_fitted()
        with torch.inference_mode():
            parts = [m.score_block(users) if w > 0 else None for m, w in zip(self.models, self.weights)]
            return self._combine(parts, standardise)

    # -- fold-in and explanations -----------------------------------------------------
    def _by_weighting(self) -> dict[tuple[float | None, float | None], Recommender]:
        """One live component per way of weighing a history (:func:`weighting`), in component order."""
        out: dict[tuple[float | None, float | None], Recommender] = {}
        for m, w in zip(self.models, self.weights):
            if w > 0:
                out.setdefault(weighting(m), m)
        return out

    def _with_variants(self, build: Callable[[Recommender], tuple[sp.csr_matrix, Any]]) -> tuple[sp.csr_matrix, Any]:
        """Profiles built by each way of weighing a history the live components use: the first one's,
        carrying all of them as ``variants`` (see :func:`ncf.base.profile_rows`)."""
        built = {key: build(m) for key, m in self._by_weighting().items()}
        first, rest = next(iter(built.values()))
        out = first.copy()
        out.variants = {key: p for key, (p, _) in built.items()}
        return out, rest

    def history_profiles(
        self,
        histories: Any,
        *,
        timestamps: Any = None,
        weights: Any = None,
        names: Sequence[Any] | None = None,
    ) -> tuple[sp.csr_matrix, list[list[Any]]]:
        """As :meth:`ncf.base.Recommender.history_profiles`, weighted as each component weighs a history
        (the components' own recency), so each scores a history exactly as its training users."""
        self.check_fitted()
        return self._with_variants(
            lambda m: m.history_profiles(histories, timestamps=timestamps, weights=weights, names=names)
        )

    def training_profiles(self, user_idx: np.ndarray) -> sp.csr_matrix:
        self.check_fitted()
        return self._with_variants(lambda m: (m.training_profiles(user_idx), None))[0]

    def _parts(self, profiles: sp.csr_matrix) -> list[sp.csr_matrix | None]:
        """Each component's version of ``profiles`` (None for a zero-weight one)."""
        variants = getattr(profiles, "variants", None)
        if variants is None:  # plain profile rows: every live component must weigh a history alike
            self._weighting()
            return [profiles if w > 0 else None for w in self.weights]
        return [variants[weighting(m)] if w > 0 else None for m, w in zip(self.models, self.weights)]

    def _weighting(self) -> tuple[float | None, float | None]:
        """The one way every live component weighs a history; raises when they differ."""
        seen = {n: weighting(m) for n, m, w in zip(self.names, self.models, self.weights) if w > 0}
        if len(set(seen.values())) > 1:
            shown = ", ".join(f"{n}: {'none' if h is None else f'half-life {h:g}'}" for n, (h, _) in seen.items())
            raise ConfigError(
                f"this blend's components weigh a history differently ({shown}); build the profiles with "
                "the blend's own history_profiles / training_profiles, which weigh them for each component"
            )
        return next(iter(seen.values()))

    @property
    def folds_in(self) -> bool:
        """Whether histories can be scored (and explained): every live component can."""
        return all(
            type(m).history_scores is not Recommender.history_scores for m, w in zip(self.models, self.weights) if w > 0
        )

    def _profile_scores(self, profiles: sp.csr_matrix, method: str, z: Any) -> torch.Tensor:
        """``sum_j w_j z(component_j.method(its version of profiles))``."""
        parts = self._parts(profiles)
        scores = [getattr(m, method)(p) if p is not None else None for m, p in zip(self.models, parts)]
        return self._combine(scores, z)

    def history_scores(self, profiles: sp.csr_matrix) -> torch.Tensor:
        from ncf.item_item import standardise

        self.check_fitted()
        return self._profile_scores(profiles, "history_scores", standardise)

    def _explain_scores(self, stacked: sp.csr_matrix) -> torch.Tensor:
        """Each component's explain scores standardised by the FULL history's row (row 0), as NCF's
        item-item term does (:meth:`ncf.NCF._explain_scores`): row 0 is exactly the blend's score."""
        from ncf.item_item import standardise_by_first_row

        return self._profile_scores(stacked, "_explain_scores", standardise_by_first_row)

    # -- persistence -----------------------------------------------------------------
    def blend_info(self) -> dict[str, Any]:
        """Components and weights (and the validation that chose them), for the bundle and ``GET /v1/model``."""
        return {"components": dict(zip(self.names, (round(w, 4) for w in self.weights))), **self.validation_}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """One bundle (one safetensors file, one checksum) holding every component; atomic."""
        from ncf.persist import save_bundle
        from ncf.update import update_history

        self.check_fitted()
        comps, extras, weights = [], [], {}
        for j, (n, m, w) in enumerate(zip(self.names, self.models, self.weights)):
            parts = m.bundle_parts()
            comps.append({"model": n, "model_class": parts["model_class"], "config": parts["config"], "weight": w})
            extras.append(parts["extra"])
            weights.update({f"c{j}.{k}": v for k, v in parts["weights"].items()})
        extra = {
            "created": getattr(self, "created_", None),
            "fit_seconds": getattr(self, "fit_seconds_", None),
            "data_fingerprint": self.train_.fingerprint(),
            "blend": self.blend_info(),
            "components": extras,
            **({"leaderboard": self.leaderboard_} if self.leaderboard_ else {}),
            **({"updates": h} if (h := update_history(self)) else {}),
        }
        return save_bundle(
            path,
            model_class=self.MODEL_CLASS,
            config={"components": comps},
            weights=weights,
            train=self.train_,
            extra=extra,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: Any = "cpu") -> Blend:
        """Load a bundle written by :meth:`save`; every component is checked by its own class's loader."""
        from ncf.persist import load_bundle

        return cls.from_bundle(load_bundle(path), device=device)

    @classmethod
    def from_bundle(cls, b: Bundle, *, device: Any = "cpu") -> Blend:
        from ncf.loading import component_class
        from ncf.persist import EXTRA_TYPES, _check_kinds
        from ncf.registry import known_models

        if b.model_class != cls.MODEL_CLASS:
            raise BundleError(f"{b.path} holds a {b.model_class} model, not a Blend; load it with ncf.load_model()")
        comps = b.config.get("components")
        extras = b.extra.get("components")
        if not isinstance(comps, list) or not 1 <= len(comps) <= MAX_COMPONENTS:
            raise BundleError(
                f"{b.path}: a blend's config must list 1-{MAX_COMPONENTS} components; the file is corrupt"
            )
        if not isinstance(extras, list) or len(extras) != len(comps):
            raise BundleError(f"{b.path}: the blend's extra lacks one entry per component; the file is corrupt")
        keys = {"model", "model_class", "config", "weight"}
        models, names, weights = [], [], []
        prefixes = [f"c{j}." for j in range(len(comps))]
        stray = [k for k in b.weights if not k.startswith(tuple(prefixes))]
        if stray:
            raise BundleError(f"{b.path}: weights {stray[:5]} belong to no component of the blend; the file is corrupt")
        for j, c in enumerate(comps):
            if not isinstance(c, dict) or set(c) != keys or not isinstance(c["config"], dict):
                raise BundleError(
                    f"{b.path}: blend component {j} must have exactly {sorted(keys)} (config an object); "
                    "the file is corrupt or was edited"
                )
            _check_kinds(b.path, f"component {j}'s extra", extras[j], EXTRA_TYPES)
            if not isinstance(c["model"], str) or c["model"] not in known_models():
                raise BundleError(
                    f"{b.path}: blend component {j}'s model name {str(c['model'])[:80]!r} is not a model ncf knows; "
                    "the file is corrupt or was edited"
                )
            klass = component_class(b.path, c["model_class"], j)
            sub = b.part(prefixes[j], c["model_class"], c["config"], extras[j])
            try:
                models.append(klass.from_bundle(sub, device=device))
            except BundleError as e:
                raise BundleError(f"blend component {j} ({c['model']}): {e}") from None
            names.append(c["model"])
            weights.append(c["weight"])
        try:
            est = cls(list(zip(names, models)), weights)
        except (ConfigError, DataError) as e:
            raise BundleError(
                f"{b.path}: the stored blend is invalid ({e}); the file is corrupt or was edited"
            ) from None
        est.fit_seconds_ = b.extra.get("fit_seconds") or 0.0
        est.created_ = b.extra.get("created") or ""
        est.bundle_extra_ = b.extra
        info = b.extra.get("blend")
        est.validation_ = {k: v for k, v in info.items() if k != "components"} if isinstance(info, dict) else {}
        board = b.extra.get("leaderboard")
        est.leaderboard_ = board if isinstance(board, list) else None
        return est

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}: {w:.2f}" for n, w in zip(self.names, self.weights))
        return f"Blend({inner})"
