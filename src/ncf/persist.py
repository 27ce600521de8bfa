"""Model bundles: one safetensors file per model, written atomically, loaded without pickle.

A bundle is a folder holding ``model.safetensors``. The file's tensors are the weights
(``weights.*``), the id maps (``users.*``, ``items.*``) and the training interactions used
for seen-item filtering (``train.*``); its string metadata holds JSON: the estimator's
config, versions, and optional item metadata. safetensors stores raw little-endian
buffers and a JSON header, so loading parses data and never executes code.

Saving goes through :func:`ncf.fsutil.atomic_write` (a temporary file beside the target,
fsynced, renamed over the old one, then the folder fsynced): a crash at any point leaves
either the old bundle or the new one, never a torn file.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from ncf._version import __version__
from ncf.data.ids import IdMap
from ncf.data.interactions import Interactions
from ncf.errors import BundleError, ConfigError, one_line
from ncf.fsutil import atomic_write

FORMAT = "ncf-bundle"
#: 2: the tensors' sha256 (``tensors_sha256``) is mandatory and the metadata follows the schema
#: below. Format-1 bundles load when they carry the checksum (ncf wrote one since issue 6);
#: one without it is refused, and :func:`upgrade_bundle` (``ncf bundle upgrade DIR``) re-saves it.
FORMAT_VERSION = 2
FILENAME = "model.safetensors"


def bundle_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p if p.suffix == ".safetensors" else p / FILENAME


OutputKind = Literal["bundle", "file", "folder"]


def check_output_path(path: str | os.PathLike[str] | None, *, kind: OutputKind, flag: str = "--out") -> Path:
    """Check, before any work starts, that ``path`` can be written; return the file or folder to write.

    ``kind``: ``"bundle"`` (a folder that gets ``model.safetensors``, or a ``.safetensors`` path),
    ``"file"`` (one file) or ``"folder"``. Refused with :class:`~ncf.errors.ConfigError` naming
    ``flag``: an empty path; a target file that is a folder (or a target folder that is a file);
    a path under an existing file; a broken symbolic link on the way; a nearest existing folder
    that this process cannot write to. Nothing is created here: the writer makes the folders.
    This is the one check every command that writes runs first, so a bad ``--out`` fails in
    milliseconds instead of after a full training run.
    """
    if path is None or not str(os.fspath(path)).strip():
        raise ConfigError(f"{flag} is empty; give a path such as runs/model")
    given = Path(path)
    if kind == "bundle":
        target = bundle_file(given)
        if target.is_dir():
            raise ConfigError(
                f"{flag} {given}: {target} is a folder, so the model file cannot be written there; "
                "remove it or choose another path"
            )
        folder = target.parent
    elif kind == "file":
        target = given
        if target.is_dir():
            raise ConfigError(f"{flag} {given} is a folder; give a file path")
        folder = target.parent
    else:
        target = folder = given
    probe = folder
    while not os.path.lexists(probe):
        probe = probe.parent
    if not probe.exists():
        raise ConfigError(f"{flag} {given}: {probe} is a broken symbolic link; remove it or choose another path")
    if not probe.is_dir():
        what = "the output folder" if probe == folder else "a folder on the way"
        raise ConfigError(
            f"{flag} {given}: {probe} is a file, not a folder, so it cannot be {what}; choose another path"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {given}: no permission to write in {probe}; choose another path")
    return target


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order.

    Stored in the bundle's metadata and checked on load, so a file whose tensor bytes were
    edited or damaged (a flipped bit passes safetensors' own structural checks) is refused.
    The metadata itself is not covered: each of its fields is validated on its own.
    """
    import hashlib

    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{str(t.dtype)}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())  # the raw bytes, no copy (bool, 0-d, empty alike)
    return h.hexdigest()


def write_safetensors_atomic(target: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Serialise ``tensors`` + ``metadata`` in memory and write them to ``target`` atomically.

    In memory, into our own temp file: safetensors' save_file keeps a hidden temp file of
    its own, which a crash would leave behind beside the target.
    """
    from safetensors.torch import save as to_bytes

    payload = to_bytes({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, metadata=metadata)
    atomic_write(target, payload)


def _interaction_tensors(prefix: str, data: Interactions) -> dict[str, torch.Tensor]:
    out = {
        f"{prefix}.user_idx": torch.as_tensor(data.user_idx.astype(np.int64)),
        f"{prefix}.item_idx": torch.as_tensor(data.item_idx.astype(np.int64)),
    }
    if data.timestamps is not None:
        out[f"{prefix}.timestamps"] = torch.as_tensor(data.timestamps.astype(np.float64))
    return out


def save_bundle(
    path: str | os.PathLike[str],
    *,
    model_class: str,
    config: dict[str, Any],
    weights: dict[str, torch.Tensor],
    train: Interactions,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a bundle; returns the file written."""
    tensors: dict[str, torch.Tensor] = {}
    for name, t in weights.items():
        tensors[f"weights.{name}"] = t.detach().to("cpu").contiguous()
    for axis, m in (("users", train.user_map), ("items", train.item_map)):
        for name, arr in m.to_arrays().items():
            tensors[f"{axis}.{name}"] = torch.as_tensor(np.ascontiguousarray(arr))
    tensors.update(_interaction_tensors("train", train))
    meta = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "ncf_version": __version__,
        "model_class": model_class,
        "config": json.dumps(config),
        "extra": json.dumps(extra or {}, default=str),
        "tensors_sha256": tensor_digest(tensors),
    }
    if train.item_metadata is not None:
        md = train.item_metadata.reset_index()
        meta["item_metadata"] = md.to_json(orient="split", index=False)
    target = check_output_path(path, kind="bundle", flag="bundle path")
    write_safetensors_atomic(target, tensors, meta)
    return target


# -- the metadata schema: checked before any tensor is read or any model built ----------------------------
# JSON kinds: what a metadata value may be. Numbers must be finite; bools are not ints.
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_KINDS: dict[str, Any] = {
    "int": _is_int,
    "number": _is_number,
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "null": lambda v: v is None,
    "int_list": lambda v: isinstance(v, list) and all(_is_int(x) for x in v),
    "metrics": lambda v: isinstance(v, dict) and all(x is None or _is_number(x) for x in v.values()),
}

#: The stored config of every model class a bundle can hold: parameter -> allowed JSON kinds.
#: Values are then range-checked by the class itself (``_validate``) before anything is built.
#: The model classes a bundle may name. The config's fields are checked by that class's ``load``
#: against its declared hyper-parameters (:mod:`ncf.params`: types and ranges, one list per class).
MODEL_CLASSES: tuple[str, ...] = (
    "NCF",
    "Popularity",
    "EASE",
    "ItemKNN",
    "ImplicitALS",
    "ImplicitBPR",
    "LightFM",
    "Blend",
)

#: Fields of ``extra`` that loaders read (other fields are kept as they are and never interpreted).
EXTRA_TYPES: dict[str, str] = {
    "created": "str|null",
    "validation_metrics": "metrics",
    "best_epoch": "int|null",
    "fit_seconds": "number|null",
    "data_fingerprint": "str|null",
    "seed": "int|null",
}

_VERSION_RE = re.compile(r"[1-9][0-9]{0,5}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_JSON_FIELD_MAX = 64 << 20  # bytes of one JSON metadata field


def parse_format_version(value: Any, where: str | os.PathLike[str] = "bundle") -> int:
    """A stored ``format_version`` as an int: ASCII digits, >= 1. Anything else raises BundleError."""
    if not isinstance(value, str) or not _VERSION_RE.fullmatch(value):
        raise BundleError(
            f"{where}: unreadable format_version {value!r} (expected a positive integer); the file is corrupt"
        )
    return int(value)


def _json_field(f: Path, meta: Mapping[str, str], key: str, default: str | None = None) -> Any:
    text = meta.get(key, default)
    if text is None:
        raise BundleError(f"{f}: bundle metadata lacks {key!r}; the file is corrupt")
    if len(text) > _JSON_FIELD_MAX:
        raise BundleError(f"{f}: bundle metadata {key!r} is over {_JSON_FIELD_MAX >> 20} MiB; the file is corrupt")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, too many digits, nesting too deep
        raise BundleError(
            f"{f}: the bundle's {key} is not valid JSON ({one_line(e)[:200]}); the file is corrupt"
        ) from None


def _check_kinds(f: Path, what: str, obj: Any, types: Mapping[str, str]) -> None:
    if not isinstance(obj, dict):
        raise BundleError(
            f"{f}: the bundle's {what} is a JSON {type(obj).__name__}, not an object; the file is corrupt"
        )
    for key, kinds in types.items():
        if key in obj and not any(_KINDS[k](obj[key]) for k in kinds.split("|")):
            shown = repr(obj[key])
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            raise BundleError(
                f"{f}: the bundle's {what} field {key!r} is {shown}, expected {kinds.replace('|', ' or ')}; "
                "the file is corrupt or was edited"
            )


def check_metadata(f: Path, meta: Mapping[str, str]) -> dict[str, Any]:
    """Validate a bundle header's metadata against the schema; return the parsed fields.

    Checked: ``format``, ``format_version`` (1..FORMAT_VERSION), ``model_class`` (a known
    class), ``tensors_sha256`` (present, 64 hex digits; a format-1 bundle without it gets the
    upgrade hint), ``config`` (a JSON object whose fields have the class's types), ``extra`` (a
    JSON object whose fields the loaders read have their types). Raises :class:`BundleError`.
    """
    if meta.get("format") != FORMAT:
        raise BundleError(f"{f} is a safetensors file but not an ncf model bundle (format {meta.get('format')!r})")
    if "format_version" not in meta:
        raise BundleError(f"{f}: bundle metadata lacks 'format_version'; the file is corrupt")
    version = parse_format_version(meta["format_version"], f)
    if version > FORMAT_VERSION:
        raise BundleError(
            f"{f} has bundle format {version}, newer than this ncf understands ({FORMAT_VERSION}); "
            f"upgrade ncf (it was written by ncf {meta.get('ncf_version', '?')})"
        )
    checksum = meta.get("tensors_sha256")
    if checksum is None:
        if version < FORMAT_VERSION and _ALLOW_UNVERIFIED.get():
            pass  # upgrade_bundle: checked below like any other bundle, then re-saved with a checksum
        elif version < FORMAT_VERSION:
            raise BundleError(
                f"{f} is bundle format {version} without a checksum, so damage to its weights cannot be detected; "
                f"if you trust it, re-save it with `ncf bundle upgrade {f.parent}` (ncf.loading.upgrade_bundle)"
            )
        else:
            raise BundleError(
                f"{f}: bundle metadata lacks 'tensors_sha256' (every format-{version} bundle has one); "
                "the file was edited or damaged: restore it from a copy or re-train"
            )
    elif not isinstance(checksum, str) or not _SHA256_RE.fullmatch(checksum):
        raise BundleError(f"{f}: unreadable tensors_sha256 {checksum[:80]!r}; the file is corrupt")
    model_class = meta.get("model_class")
    if model_class is None:
        raise BundleError(f"{f}: bundle metadata lacks 'model_class'; the file is corrupt")
    if model_class not in MODEL_CLASSES:
        known = ", ".join(sorted(MODEL_CLASSES))
        raise BundleError(
            f"{f} holds a model of class {model_class[:80]!r}, which this ncf cannot load (known classes: {known}); "
            "it may have been written by a newer ncf"
        )
    config = _json_field(f, meta, "config")
    _check_kinds(f, "config", config, {})  # an object; its fields: the class's load (declared params)
    extra = _json_field(f, meta, "extra", "{}")
    _check_kinds(f, "extra", extra, EXTRA_TYPES)
    return {"version": version, "model_class": model_class, "config": config, "extra": extra}


# Set only by upgrade_bundle: a format-1 bundle without a checksum may be read (and then fully checked).
_ALLOW_UNVERIFIED: contextvars.ContextVar[bool] = contextvars.ContextVar("ncf_allow_unverified", default=False)


class Bundle:
    """A loaded bundle: config, id maps, train interactions and weight tensors."""

    def __init__(
        self,
        meta: dict[str, str],
        tensors: dict[str, torch.Tensor],
        path: Path,
        parsed: dict[str, Any] | None = None,
    ) -> None:
        parsed = parsed if parsed is not None else check_metadata(path, meta)
        self.path = path
        self.model_class: str = parsed["model_class"]
        self.format_version: int = parsed["version"]
        self.ncf_version = meta.get("ncf_version", "?")
        self.config: dict[str, Any] = parsed["config"]
        self.extra: dict[str, Any] = parsed["extra"]
        self.weights = {k[len("weights.") :]: v for k, v in tensors.items() if k.startswith("weights.")}
        for name, t in tensors.items():  # casting a mistyped id/index table would silently change it
            want = _TABLE_DTYPES.get(name.split(".", 1)[-1]) if not name.startswith("weights.") else None
            if want is not None and t.dtype != want:
                raise BundleError(f"{path}: tensor {name!r} has dtype {t.dtype}, expected {want}; the file is corrupt")
            if want is not None and t.ndim != 1:
                raise BundleError(
                    f"{path}: tensor {name!r} has shape {tuple(t.shape)}, expected 1-D; the file is corrupt"
                )
        ts = tensors.get("train.timestamps")
        if ts is not None and not torch.isfinite(ts).all():
            raise BundleError(f"{path}: the stored training timestamps contain NaN or inf; the file is corrupt")
        try:
            user_map = IdMap.from_arrays(_prefixed(tensors, "users"), name="user")
            item_map = IdMap.from_arrays(_prefixed(tensors, "items"), name="item")
            tr = _prefixed(tensors, "train")
            self.train = Interactions.from_indices(
                user_map,
                item_map,
                tr["user_idx"],
                tr["item_idx"],
                tr.get("timestamps"),
                item_metadata=_item_metadata(path, meta),
            )
        except (KeyError, ValueError, UnicodeDecodeError) as e:
            raise BundleError(
                f"{path}: the bundle's id maps or interactions are missing or inconsistent ({one_line(e)[:300]})"
            ) from None

    def part(self, prefix: str, model_class: str, config: dict[str, Any], extra: dict[str, Any]) -> Bundle:
        """One component of a blend bundle: the weights under ``prefix`` (``"c0."``), the stated class,
        config and extra, and this bundle's data (id maps, interactions), which the components share."""
        sub = copy.copy(self)
        sub.model_class, sub.config, sub.extra = model_class, config, extra
        sub.weights = {k[len(prefix) :]: v for k, v in self.weights.items() if k.startswith(prefix)}
        return sub


def stored_half_life(b: Bundle, half: torch.Tensor | None, *, from_metadata: bool = False) -> float | None:
    """The recency half-life a bundle's model was fitted with: its ``recency_half_life`` weight (one
    value), or with ``from_metadata`` (NCF bundles from before it was a weight) the ``recency`` the
    metadata records; None when recency was off. Checked: a number > 0, and timestamps in the bundle."""
    if half is not None and tuple(half.shape) != (1,):
        raise BundleError(f"{b.path}: stored recency half-life {half.tolist()} is invalid; the bundle is corrupt")
    value: Any = float(half[0]) if half is not None else (b.extra.get("recency") if from_metadata else None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise BundleError(
            f"{b.path}: stored recency half-life {value!r} is invalid (must be > 0); the bundle is corrupt"
        )
    if b.train.timestamps is None:
        raise BundleError(f"{b.path}: the model was fitted with recency weights but the bundle has no timestamps")
    return float(value)


def _item_metadata(path: Path, meta: Mapping[str, str]) -> pd.DataFrame | None:
    """The stored item metadata (a JSON table: the item id column first), or None."""
    if "item_metadata" not in meta:
        return None
    try:
        md = pd.read_json(_io_string(meta["item_metadata"]), orient="split")
        return md.set_index(md.columns[0])
    except Exception as e:  # noqa: BLE001 - pandas raises many types for a malformed table
        raise BundleError(f"{path}: the bundle's item metadata is not a readable table ({one_line(e)[:200]})") from None


_TABLE_DTYPES = {
    "ids": torch.int64,
    "offsets": torch.int64,
    "utf8": torch.uint8,
    "user_idx": torch.int64,
    "item_idx": torch.int64,
    "timestamps": torch.float64,
}


def _io_string(s: str) -> Any:
    import io

    return io.StringIO(s)


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, np.ndarray]:
    p = prefix + "."
    out = {k[len(p) :]: v.numpy() for k, v in tensors.items() if k.startswith(p)}
    if not out:
        raise KeyError(f"no '{prefix}' tensors")
    return out


def read_header(path: str | os.PathLike[str]) -> tuple[Path, dict[str, str]]:
    """The bundle file and its header metadata (no tensors read). Raises BundleError when unreadable."""
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    f = bundle_file(path)
    if not f.is_file():
        hint = " (it is a folder without model.safetensors)" if Path(path).is_dir() else ""
        raise BundleError(f"no model bundle at {path}{hint}; train one with `ncf train ... --out DIR` or NCF.save(DIR)")
    try:
        with safe_open(str(f), framework="pt") as fh:
            return f, dict(fh.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise BundleError(
            f"{f} is not a readable model bundle ({one_line(e)}); it may be truncated or corrupt"
        ) from None


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Read and check a bundle. Raises :class:`BundleError` with the reason and the fix.

    Order: the header's metadata against the schema (:func:`check_metadata`), then the
    tensors against the checksum, then the id maps and interactions. The model classes then
    check the config's values and the weights' names, dtypes and shapes before building.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    f, meta = read_header(path)
    parsed = check_metadata(f, meta)
    try:
        tensors = load_file(str(f))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise BundleError(
            f"{f} is not a readable model bundle ({one_line(e)}); it may be truncated or corrupt"
        ) from None
    checksum = meta.get("tensors_sha256")
    if checksum is not None and tensor_digest(tensors) != checksum:
        raise BundleError(
            f"{f}: the tensors do not match the bundle's checksum; the file was edited or damaged "
            "(re-save the model, or restore the bundle from a copy)"
        )
    return Bundle(meta, tensors, f, parsed)


def check_weights(
    path: str | os.PathLike[str],
    weights: Mapping[str, torch.Tensor],
    expected: Mapping[str, tuple[tuple[int, ...], torch.dtype]],
    what: str = "",
) -> None:
    """Weights must be exactly ``expected`` (name -> (shape, dtype)): same names, shapes and dtypes.

    Called with the shapes a stored config implies, before the model is built, so a config
    edited to ``factors: 1e9`` is refused instead of allocating terabytes.
    """
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        parts = ([f"missing {missing[:5]}"] if missing else []) + ([f"unexpected {extra[:5]}"] if extra else [])
        raise BundleError(f"{path}: weights do not match the stored config{what}: {'; '.join(parts)}")
    for name, (shape, dtype) in expected.items():
        t = weights[name]
        if t.dtype != dtype:
            raise BundleError(f"{path}: weight {name!r} has dtype {t.dtype}, expected {dtype}")
        if tuple(t.shape) != tuple(shape):
            raise BundleError(
                f"{path}: weights do not match the stored config{what}: {name!r} has shape {tuple(t.shape)}, "
                f"the config implies {tuple(shape)}"
            )


@contextlib.contextmanager
def _unverified_allowed() -> Iterator[None]:
    token = _ALLOW_UNVERIFIED.set(True)
    try:
        yield
    finally:
        _ALLOW_UNVERIFIED.reset(token)
