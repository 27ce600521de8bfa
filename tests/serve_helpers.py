"""Small seeded models and a real-uvicorn runner shared by the serving tests."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ncf import NCF, load_interactions
from ncf.baselines import Popularity

N_USERS, N_ITEMS = 30, 40
GENRES = ["Drama", "Comedy", "Action", "Sci-Fi"]


def int_data():
    """30 int users x 40 int items (100..139) with timestamps and titles/years/genres."""
    rng = np.random.default_rng(0)
    n = 600
    df = pd.DataFrame(
        {"u": rng.integers(1, N_USERS + 1, n), "i": rng.integers(100, 100 + N_ITEMS, n), "t": np.arange(n)}
    )
    data = load_interactions(df, user="u", item="i", timestamp="t")
    items = np.arange(100, 100 + N_ITEMS)
    md = pd.DataFrame(
        {
            "title": [f"Film {i}" for i in items],
            "year": pd.array([1980 + i % 30 for i in items], dtype="Int64"),
            "genres": ["|".join(GENRES[j % 4 : j % 4 + 2]) for j in range(N_ITEMS)],
        },
        index=pd.Index(items, name="item"),
    )
    return dataclasses.replace(data, item_metadata=md)


def str_data():
    """String ids that look like numbers ("007") must stay strings; no metadata, no timestamps."""
    users = ["007", "alice", "bob", "日本", "42"]
    rows = [(u, f"film-{(j * 3 + k) % 9}") for j, u in enumerate(users) for k in range(3)]
    return load_interactions(pd.DataFrame(rows, columns=["u", "i"]), user="u", item="i")


def tiny_ncf(data) -> NCF:
    return NCF(factors=4, layers=(8, 4), epochs=2, batch_size=64, seed=0, device="cpu").fit(data, validation=None)


def build_bundles(root: Path) -> dict[str, Path]:
    out = {"int": root / "int", "int_b": root / "int_b", "str": root / "str", "pop": root / "pop"}
    d = int_data()
    tiny_ncf(d).save(out["int"])
    NCF(factors=4, layers=(8, 4), epochs=1, batch_size=64, seed=1, device="cpu").fit(d, validation=None).save(
        out["int_b"]
    )
    tiny_ncf(str_data()).save(out["str"])
    Popularity().fit(d).save(out["pop"])
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(app, **config) -> Iterator[int]:
    """Run ``app`` under uvicorn on a free loopback port in a thread; yield the port.

    ``config`` goes to ``uvicorn.Config`` (e.g. ``http=`` a protocol class, ``timeout_keep_alive=``).
    """
    import uvicorn

    port = free_port()
    opts = {"log_level": "warning", "access_log": False, **config}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **opts))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def running_server(app) -> Iterator[str]:
    """:func:`serving`, yielding the base URL."""
    with serving(app) as port:
        yield f"http://127.0.0.1:{port}"
