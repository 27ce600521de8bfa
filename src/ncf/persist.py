"""Model bundles: one safetensors file per model, written atomically, loaded without pickle.

A bundle is a folder holding ``model.safetensors``. The file's tensors are the weights
(``weights.*``), the id maps (``users.*``, ``items.*``) and the training interactions used
for seen-item filtering (``train.*``); its string metadata holds JSON: the estimator's
config, versions, and optional item metadata. safetensors stores raw little-endian
buffers and a JSON header, so loading parses data and never executes code.

Saving writes a temporary file beside the target, fsyncs it, and renames it over the old
one (atomic on POSIX), then fsyncs the folder: a crash at any point leaves either the old
bundle or the new one, never a torn file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from ncf.data.ids import IdMap
from ncf.data.interactions import Interactions
from ncf.errors import BundleError, ConfigError

FORMAT = "ncf-bundle"
FORMAT_VERSION = 1
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
            raise ConfigError(f"{flag} {given}: {target} is a folder, so the model file cannot be written there; "
                              "remove it or choose another path")  # fmt: skip
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
        raise ConfigError(f"{flag} {given}: {probe} is a file, not a folder, so it cannot be {what}; choose another path")  # fmt: skip
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {given}: no permission to write in {probe}; choose another path")
    return target


def atomic_write_bytes(target: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then atomically move the result onto ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(payload)

    atomic_write_bytes(target, write)


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
    import ncf

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
        "ncf_version": ncf.__version__,
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


class Bundle:
    """A loaded bundle: config, id maps, train interactions and weight tensors."""

    def __init__(
        self,
        meta: dict[str, str],
        tensors: dict[str, torch.Tensor],
        path: Path,
    ) -> None:
        self.path = path
        self.model_class = meta["model_class"]
        self.format_version = int(meta["format_version"])
        self.ncf_version = meta.get("ncf_version", "?")
        try:
            self.config: dict[str, Any] = json.loads(meta["config"])
            self.extra: dict[str, Any] = json.loads(meta.get("extra", "{}"))
        except json.JSONDecodeError as e:
            raise BundleError(f"{path}: the bundle's config is not valid JSON ({e}); the file is corrupt") from None
        self.weights = {k[len("weights.") :]: v for k, v in tensors.items() if k.startswith("weights.")}
        for name, t in tensors.items():  # casting a mistyped id/index table would silently change it
            want = _TABLE_DTYPES.get(name.split(".", 1)[-1]) if not name.startswith("weights.") else None
            if want is not None and t.dtype != want:
                raise BundleError(f"{path}: tensor {name!r} has dtype {t.dtype}, expected {want}; the file is corrupt")
        ts = tensors.get("train.timestamps")
        if ts is not None and not torch.isfinite(ts).all():
            raise BundleError(f"{path}: the stored training timestamps contain NaN or inf; the file is corrupt")
        try:
            user_map = IdMap.from_arrays(_prefixed(tensors, "users"), name="user")
            item_map = IdMap.from_arrays(_prefixed(tensors, "items"), name="item")
            tr = _prefixed(tensors, "train")
            item_md = None
            if "item_metadata" in meta:
                item_md = pd.read_json(_io_string(meta["item_metadata"]), orient="split")
                item_md = item_md.set_index(item_md.columns[0])
            self.train = Interactions.from_indices(
                user_map, item_map, tr["user_idx"], tr["item_idx"], tr.get("timestamps"), item_metadata=item_md
            )
        except (KeyError, ValueError) as e:
            raise BundleError(f"{path}: the bundle's id maps or interactions are missing or inconsistent ({e})") from None


_TABLE_DTYPES = {
    "ids": torch.int64, "offsets": torch.int64, "utf8": torch.uint8,
    "user_idx": torch.int64, "item_idx": torch.int64, "timestamps": torch.float64,
}  # fmt: skip


def _io_string(s: str) -> Any:
    import io

    return io.StringIO(s)


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, np.ndarray]:
    p = prefix + "."
    out = {k[len(p) :]: v.numpy() for k, v in tensors.items() if k.startswith(p)}
    if not out:
        raise KeyError(f"no '{prefix}' tensors")
    return out


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Read and check a bundle. Raises :class:`BundleError` with the reason and the fix."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    f = bundle_file(path)
    if not f.exists():
        hint = " (it is a folder without model.safetensors)" if Path(path).is_dir() else ""
        raise BundleError(f"no model bundle at {path}{hint}; train one with `ncf train ... --out DIR` or NCF.save(DIR)")
    try:
        with safe_open(str(f), framework="pt") as fh:
            meta = fh.metadata() or {}
        if meta.get("format") != FORMAT:
            raise BundleError(f"{f} is a safetensors file but not an ncf model bundle (format {meta.get('format')!r})")
        if "format_version" not in meta:
            raise BundleError(f"{f}: bundle metadata lacks 'format_version'; the file is corrupt")
        try:
            version = int(meta["format_version"])
        except ValueError:
            raise BundleError(f"{f}: unreadable format_version {meta.get('format_version')!r}") from None
        if version > FORMAT_VERSION:
            raise BundleError(
                f"{f} has bundle format {version}, newer than this ncf understands ({FORMAT_VERSION}); "
                f"upgrade ncf (it was written by ncf {meta.get('ncf_version', '?')})"
            )
        tensors = load_file(str(f))
    except BundleError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise BundleError(f"{f} is not a readable model bundle ({e}); it may be truncated or corrupt") from None
    for key in ("model_class", "config"):
        if key not in meta:
            raise BundleError(f"{f}: bundle metadata lacks {key!r}; the file is corrupt")
    if "tensors_sha256" in meta and tensor_digest(tensors) != meta["tensors_sha256"]:  # absent in older bundles
        raise BundleError(
            f"{f}: the tensors do not match the bundle's checksum; the file was edited or damaged "
            "(re-save the model, or restore the bundle from a copy)"
        )
    return Bundle(meta, tensors, f)
