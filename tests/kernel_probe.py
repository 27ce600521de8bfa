"""Run in a subprocess by test_kernel_cache.py: use the kernels one way, print numba's accounting as JSON.

``python kernel_probe.py fit``: small fits that reach every kernel and variant the training step
calls (both losses, the three models, weights, L2, small and large batches, one and two threads);
``python kernel_probe.py one``: one kernel (``flat_adam``) on one signature. The JSON has ``ncf``
(the file imported) and, per kernel, its signatures, numba's cache hits and misses and the hits
that came from the kernels compiled into the package (``shipped``).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

import ncf
import ncf.train.kernels as k
from ncf import NCF
from ncf.data.ids import IdMap
from ncf.data.interactions import Interactions

#: The kernels the step calls from Python (the rest are compiled into these). ``row_adam_both`` and
#: ``flat_adam`` are called from Python only with a data-parallel ``reduce`` hook between the
#: gradients and the update (else ``step_backward`` updates), which these single-process fits do not have.
TOP_LEVEL = (
    "step_forward step_forward_parallel step_backward step_backward_parallel negatives_from_ranks assemble_bce"
).split()

#: (torch threads, NCF parameters): together every kernel and variant above.
FITS = [
    (1, dict(model="neumf", loss="bce", recency="auto", weight_decay=0.01, batch_size=256)),
    (2, dict(model="neumf", loss="bpr", recency=None, weight_decay=0.0, batch_size=4096)),
    (1, dict(model="gmf", loss="bce", recency=None, weight_decay=0.01, batch_size=8192)),
    (2, dict(model="mlp", loss="bpr", recency="auto", weight_decay=0.01, batch_size=512)),
    (2, dict(model="neumf", loss="bce", recency="auto", weight_decay=0.01, batch_size=8192)),
]


def fits() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items, n = 200, 120, 3000
    key = rng.choice(n_users * n_items, n, replace=False)
    ids = IdMap(np.arange(n_users)), IdMap(np.arange(n_items))
    data = Interactions.from_indices(*ids, key // n_items, key % n_items, timestamps=rng.integers(0, 10**6, n))
    for threads, params in FITS:
        torch.set_num_threads(threads)
        model = NCF(factors=4, layers=(16, 8, 4), epochs=1, negatives=4, seed=0, refit=False, item_item=0.0, **params)
        model.fit(data, validation=None)


def one() -> None:
    f = np.zeros(3, np.float32)
    s = np.float32(0.1)
    k.flat_adam(f, f.copy(), f.copy(), f.copy(), s, s, s, s, s, s)


def report() -> dict:
    out = {}
    for name, d in sorted(vars(k).items()):
        if hasattr(d, "signatures") and hasattr(d, "py_func"):
            out[name] = {
                "signatures": [str(s) for s in d.signatures],
                "hits": sum(d.stats.cache_hits.values()),
                "misses": sum(d.stats.cache_misses.values()),
                "shipped": sum(getattr(d._cache, "shipped_hits", {}).values()),
            }
    return {"ncf": ncf.__file__, "kernels": out}


if __name__ == "__main__":
    {"fit": fits, "one": one}[sys.argv[1]]()
    print(json.dumps(report()))
