"""Crash-safe training: an atomic checkpoint after every epoch, and exact resumption.

A checkpoint folder belongs to one :meth:`ncf.NCF.fit` call. It holds ``run.json`` (the
estimator's parameters, the seed and a fingerprint of the data, so a resume with other
settings or other data is refused) and one safetensors file per training *stage*:
``gmf``, ``mlp`` and ``neumf`` with pretraining, else the model's name, plus ``*_refit``
stages for the refit run. A stage file is rewritten atomically (temp file, fsync,
rename) after each epoch with everything the epoch loop needs to continue exactly:

* the module's weights and the best epoch's weights (early stopping),
* every optimiser's state (RowAdam and Adam moments, step counts) as tensors,
* the sampling generator's state and the global torch RNG state (dropout; CUDA too),
* the loop's bookkeeping (epoch, history, best metric and epoch, bad epochs) as JSON.

When a stage ends, its file is marked done with the final weights, the global RNG state
and the stage's result, so a resumed fit skips it. No pickle anywhere: tensors are raw
safetensors buffers, the rest is JSON, and loading runs no code from the files.

The same object also tracks, in memory, the best weights seen so far in the current stage
(the last finished epoch's weights when there is no validation), which is what ``fit``
keeps when training is interrupted (Ctrl-C) or diverges.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ncf.errors import BundleError, ConfigError, one_line

__all__ = ["Checkpoint", "Resumed", "StageCheckpoint", "describe_best"]

FORMAT = "ncf-checkpoint"
FORMAT_VERSION = 1
RUN_FILE = "run.json"


@dataclass
class Resumed:
    """What :meth:`StageCheckpoint.restore` found: a finished stage or an epoch to continue after."""

    epoch: int
    history: list[dict[str, Any]]
    best_metric: float | None
    best_epoch: int
    bad_epochs: int
    best_state: dict[str, torch.Tensor] | None
    elapsed: float
    result: dict[str, Any] | None = None  # set when the stage had finished (TrainResult.to_dict())


@dataclass
class _Best:
    stage: str
    kind: str
    epoch: int
    metric: float | None
    state: dict[str, torch.Tensor] = field(repr=False)


class Checkpoint:
    """Per-epoch checkpoints of one fit in ``directory`` (or in memory only when it is None).

    Parameters
    ----------
    directory:
        Folder for the checkpoint files; ``None`` keeps only the in-memory best-so-far
        tracking (what Ctrl-C and divergence fall back to).
    run_info:
        JSON-able description of the fit (parameters, seed, data fingerprint). A resume
        whose ``run_info`` differs, other than an unset seed, is refused.
    resume:
        Continue the run found in ``directory``. Without it a folder that already holds
        checkpoints is refused rather than overwritten.
    """

    def __init__(self, directory: str | os.PathLike[str] | None, run_info: dict[str, Any], *, resume: bool) -> None:
        self.directory = None if directory is None else Path(directory)
        self.run_info = dict(run_info)
        self.resumed = False
        self._best: dict[str, _Best] = {}  # kind -> latest best-so-far weights of that model kind
        if self.directory is None:
            return
        if self.directory.exists() and not self.directory.is_dir():
            raise ConfigError(f"checkpoint_dir {self.directory} is a file; give a folder")
        run_file = self.directory / RUN_FILE
        existing = self.directory.exists() and (run_file.exists() or any(self.directory.glob("*.safetensors")))
        if existing and not resume:
            raise ConfigError(
                f"checkpoint folder {self.directory} already holds a run's checkpoints; continue it with "
                f"resume=True (ncf train --resume {self.directory}) or give an empty folder"
            )
        if existing:
            stored = self._read_run(run_file)
            self._check_same_run(stored)
            self.run_info["seed"] = stored["seed"]
            self.resumed = True
        else:
            from ncf.fsutil import atomic_write

            payload = json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **self.run_info}, indent=1)
            atomic_write(run_file, payload + "\n")

    @property
    def seed(self) -> int:
        return int(self.run_info["seed"])

    def _read_run(self, run_file: Path) -> dict[str, Any]:
        try:
            stored = json.loads(run_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BundleError(f"{run_file} is unreadable ({e}); delete the folder to start over") from None
        if not isinstance(stored, dict) or stored.get("format") != FORMAT:
            raise BundleError(f"{run_file} is not an ncf checkpoint record; give the folder of an ncf checkpoint")
        if int(stored.get("format_version", 0)) > FORMAT_VERSION:
            raise BundleError(
                f"{run_file} has checkpoint format {stored.get('format_version')}, newer than this ncf "
                f"understands ({FORMAT_VERSION}); upgrade ncf"
            )
        if "seed" not in stored:
            raise BundleError(f"{run_file} lacks the seed; the checkpoint is corrupt, delete the folder to start over")
        return stored

    def _check_same_run(self, stored: dict[str, Any]) -> None:
        mine = self.run_info
        diffs = []
        for key, value in mine.get("params", {}).items():
            if key == "seed" and value is None:
                continue  # no seed given: take the checkpoint's
            if stored.get("params", {}).get(key) != value:
                diffs.append(f"{key}={value!r} (checkpoint: {stored.get('params', {}).get(key)!r})")
        for key in ("data", "validation"):
            if stored.get(key) != mine.get(key):
                diffs.append(f"{key} {mine.get(key)!r} (checkpoint: {stored.get(key)!r})")
        if diffs:
            raise ConfigError(
                f"cannot resume from {self.directory}: it was written by a different run: {'; '.join(diffs)}; "
                "resume with the same data and parameters, or give an empty folder to start over"
            )

    def stage(self, key: str, kind: str) -> StageCheckpoint:
        """The checkpoint of one training stage (``kind`` is the module's model name)."""
        return StageCheckpoint(self, key, kind)

    def best_so_far(self, kind: str) -> _Best | None:
        """The latest best-so-far weights recorded for a module of ``kind``, if any."""
        return self._best.get(kind)

    def _remember(self, best: _Best) -> None:
        self._best[best.kind] = best


def _stage_file(directory: Path, key: str) -> Path:
    return directory / (re.sub(r"[^A-Za-z0-9_.-]+", "_", key) + ".safetensors")


class StageCheckpoint:
    """Save and restore one stage's epoch loop. Created by :meth:`Checkpoint.stage`."""

    def __init__(self, owner: Checkpoint, key: str, kind: str) -> None:
        self.owner = owner
        self.key = key
        self.kind = kind
        self.path = None if owner.directory is None else _stage_file(owner.directory, key)

    # -- writing -------------------------------------------------------------------------
    def save_epoch(
        self,
        epoch: int,
        module: nn.Module,
        opts: list[torch.optim.Optimizer],
        gen: torch.Generator,
        *,
        history: list[dict[str, Any]],
        best_metric: float | None,
        best_epoch: int,
        bad_epochs: int,
        best_state: dict[str, torch.Tensor] | None,
        elapsed: float,
    ) -> None:
        """Record the state after ``epoch`` (in memory always; on disk, atomically, with a folder)."""
        sd = module.state_dict()
        if best_state is not None:
            self.owner._remember(_Best(self.key, self.kind, best_epoch, best_metric, best_state))
        else:  # no validation: the last finished epoch is the best we know
            self.owner._remember(
                _Best(self.key, self.kind, epoch, None, {k: v.detach().clone() for k, v in sd.items()})
            )
        if self.path is None:
            return
        tensors = _prefix("module", sd)
        if best_state is not None:
            tensors.update(_prefix("best", best_state))
        opt_meta = _optimizer_tensors(opts, tensors)
        _rng_tensors(gen, module, tensors)
        loop = {
            "epoch": epoch,
            "history": history,
            "best_metric": best_metric,
            "best_epoch": best_epoch,
            "bad_epochs": bad_epochs,
            "elapsed": elapsed,
            "has_best": best_state is not None,
        }
        self._write(tensors, status="running", loop=loop, opt_meta=opt_meta)

    def finish(self, module: nn.Module, result: dict[str, Any]) -> None:
        """Mark the stage done with its final weights and result."""
        state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        self.owner._remember(_Best(self.key, self.kind, result.get("best_epoch", 0), result.get("best_metric"), state))
        if self.path is None:
            return
        tensors = _prefix("module", module.state_dict())
        _rng_tensors(None, module, tensors)
        self._write(tensors, status="done", result=result)

    def _write(self, tensors: dict[str, torch.Tensor], **meta: Any) -> None:
        from ncf.persist import write_safetensors_atomic

        header = {
            "format": FORMAT,
            "format_version": str(FORMAT_VERSION),
            "stage": self.key,
            "kind": self.kind,
            **{k: (v if isinstance(v, str) else json.dumps(v)) for k, v in meta.items()},
        }
        assert self.path is not None
        write_safetensors_atomic(self.path, tensors, header)

    # -- reading -------------------------------------------------------------------------
    def restore(self, module: nn.Module, opts: list[torch.optim.Optimizer], gen: torch.Generator) -> Resumed | None:
        """Load this stage's checkpoint into ``module``, ``opts``, ``gen`` and the global RNG.

        Returns ``None`` when there is nothing to resume (no folder, or the stage has not
        finished an epoch yet); raises :class:`~ncf.errors.BundleError` for a corrupt file.
        """
        if self.path is None or not self.path.exists():
            return None
        meta, tensors = self._read()
        try:
            module.load_state_dict(_unprefix("module", tensors), strict=True)
            if meta["status"] == "done":
                _restore_rng(None, module, tensors)
                result = json.loads(meta["result"])
                return Resumed(0, [], None, 0, 0, None, 0.0, result=result)
            loop = json.loads(meta["loop"])
            _restore_optimizers(opts, tensors, json.loads(meta["opt_meta"]))
            _restore_rng(gen, module, tensors)
            best = _unprefix("best", tensors) if loop["has_best"] else None
            if best is not None:
                own = module.state_dict()
                best = {k: v.to(own[k].device) for k, v in best.items()}
        except (KeyError, ValueError, TypeError, RuntimeError, json.JSONDecodeError) as e:
            raise BundleError(
                f"{self.path}: checkpoint does not match this run's model ({one_line(e)[:300]}); "
                "delete the file to redo that stage"
            ) from None
        res = Resumed(
            int(loop["epoch"]),
            loop["history"],
            loop["best_metric"],
            int(loop["best_epoch"]),
            int(loop["bad_epochs"]),
            best,
            float(loop["elapsed"]),
        )
        if best is not None:
            self.owner._remember(_Best(self.key, self.kind, res.best_epoch, res.best_metric, best))
        return res

    def _read(self) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
        from safetensors import SafetensorError
        from safetensors.torch import load_file, safe_open

        assert self.path is not None
        try:
            with safe_open(str(self.path), framework="pt") as fh:
                meta = fh.metadata() or {}
            tensors = load_file(str(self.path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise BundleError(
                f"{self.path} is not a readable checkpoint ({one_line(e)}); it may be truncated or corrupt; "
                "delete it to redo that stage"
            ) from None
        if meta.get("format") != FORMAT:
            raise BundleError(f"{self.path} is not an ncf checkpoint (format {meta.get('format')!r})")
        if not str(meta.get("format_version", "")).isdigit() or int(meta["format_version"]) > FORMAT_VERSION:
            raise BundleError(
                f"{self.path} has checkpoint format {meta.get('format_version')!r}, which this ncf does not "
                f"understand ({FORMAT_VERSION}); upgrade ncf"
            )
        if meta.get("stage") != self.key or meta.get("status") not in ("running", "done"):
            raise BundleError(f"{self.path} is the checkpoint of stage {meta.get('stage')!r}, not {self.key!r}")
        return meta, tensors


# -- helpers ---------------------------------------------------------------------------
def _prefix(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state.items()}


def _unprefix(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    p = prefix + "."
    return {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)}


def _optimizer_tensors(opts: list[torch.optim.Optimizer], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Put every optimiser's tensor state in ``tensors``; return the non-tensor values as JSON."""
    meta: dict[str, Any] = {"n": len(opts), "scalars": {}}
    for n, opt in enumerate(opts):
        for idx, st in opt.state_dict()["state"].items():
            for name, value in st.items():
                key = f"opt.{n}.{idx}.{name}"
                if isinstance(value, torch.Tensor):
                    # clone: safetensors refuses tensors that share memory (Adam's 0-d steps may)
                    tensors[key] = value.detach().clone()
                else:
                    meta["scalars"][key] = value
    return meta


def _restore_optimizers(opts: list[torch.optim.Optimizer], tensors: dict[str, torch.Tensor], meta: dict) -> None:
    if int(meta["n"]) != len(opts):
        raise ValueError(f"checkpoint has {meta['n']} optimisers, the model needs {len(opts)}")
    entries: dict[tuple[int, int], dict[str, Any]] = {}
    for key, value in [*((k, v) for k, v in tensors.items() if k.startswith("opt.")), *meta["scalars"].items()]:
        _, n, idx, name = key.split(".", 3)
        entries.setdefault((int(n), int(idx)), {})[name] = value
    for n, opt in enumerate(opts):
        sd = opt.state_dict()
        sd["state"] = {idx: st for (m, idx), st in entries.items() if m == n}
        opt.load_state_dict(sd)


def _rng_tensors(gen: torch.Generator | None, module: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    if gen is not None:
        tensors["rng.gen"] = gen.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    dev = _module_device(module)
    if dev.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(dev)


def _restore_rng(gen: torch.Generator | None, module: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    if gen is not None:
        gen.set_state(tensors["rng.gen"])
    torch.set_rng_state(tensors["rng.torch"])
    dev = _module_device(module)
    if dev.type == "cuda" and "rng.cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda"], dev)


def _module_device(module: nn.Module) -> torch.device:
    p = next(iter(module.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def describe_best(best: Any) -> str:
    """'stage neumf, epoch 3, validation metric 0.0412': a summary of best-so-far weights for messages."""
    metric = "" if best.metric is None else f", validation metric {best.metric:.4f}"
    return f"stage {best.stage}, epoch {best.epoch}{metric}"
