"""A CPU stand-in for ``torch.cuda.set_sync_debug_mode``: which ops would make the host wait?

On CUDA some ops copy a value back to the host before they can return: reading a scalar
(``.item()``, ``float(t)``, ``bool(t)``, ``if t:``), ops whose output size depends on the data
(``nonzero``, ``unique``, ``masked_select``, indexing with a boolean mask) and ``bincount``
(it reads the index's min and max to size its output). A CPU has no such waits, but the
same ops pass through PyTorch's dispatcher, so :class:`SyncProbe` records them by name while
a block runs. ``.numpy()`` / ``.cpu()`` on a CPU tensor dispatch nothing; code under test
on the accelerator path has none (and a CUDA run of benchmarks/gpu_bench.py counts the real
syncs with the debug mode).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

#: aten ops that synchronise with the host on CUDA, whatever their arguments.
SYNCING = {
    "aten::_local_scalar_dense",  # .item(), float(t), int(t), bool(t)
    "aten::is_nonzero",
    "aten::equal",
    "aten::nonzero",
    "aten::_unique",
    "aten::_unique2",
    "aten::unique_dim",
    "aten::unique_consecutive",
    "aten::unique_dim_consecutive",
    "aten::bincount",
    "aten::masked_select",
    "aten::histc",
    "aten::allclose",
}
#: ops that sync only with a boolean-mask index (it is turned into nonzero() inside the kernel).
MASK_INDEXED = {"aten::index", "aten::index_put", "aten::index_put_", "aten::_index_put_impl_"}


def _has_bool_tensor(x: Any) -> bool:
    if isinstance(x, torch.Tensor):
        return x.dtype == torch.bool
    if isinstance(x, (list, tuple)):
        return any(_has_bool_tensor(v) for v in x)
    return False


class SyncProbe(TorchDispatchMode):
    """``with SyncProbe() as p: ...`` then ``p.syncs``: the syncing ops called, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.syncs: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - torch's protocol
        kwargs = kwargs or {}
        name = func._schema.name
        if (
            name in SYNCING
            or (name in MASK_INDEXED and len(args) > 1 and _has_bool_tensor(args[1]))
            # repeat_interleave(repeats: Tensor) sums the repeats on the host unless told output_size
            or (
                name == "aten::repeat_interleave"
                and func._overloadname == "Tensor"
                and kwargs.get("output_size") is None
            )
        ):
            self.syncs.append(name)
        return func(*args, **kwargs)
