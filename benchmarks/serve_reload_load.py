"""The long load test: a real uvicorn server under concurrent clients while the model is
reloaded over and over. Reports requests, failures (any non-200, any answer that is neither
model's), and latency percentiles. Needs ``ncf.serve`` (the serving branch).

Two NeuMF bundles on ML-100k (seeds 0 and 1, 2 epochs each) are trained first (or reused
from ``--bundles DIR``); clients ask for single-user top-10s (90%) and 20-user batches (10%).

Usage: python benchmarks/serve_reload_load.py [--seconds 60] [--clients 8] [--reload-every 0.5]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import threading
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--reload-every", type=float, default=0.5)
    ap.add_argument("--bundles", default="runs/serve-load")
    args = ap.parse_args()

    import httpx
    import uvicorn

    from ncf import NCF, split
    from ncf.data.movielens import movielens_100k
    from ncf.loading import load_model

    try:
        create_app = __import__("ncf.serve", fromlist=["create_app"]).create_app  # the serving branch
    except ImportError:
        raise SystemExit("needs ncf.serve (the serving branch)") from None

    root = Path(args.bundles)
    paths = {name: root / name for name in ("a", "b")}
    if not all((p / "model.safetensors").exists() for p in paths.values()):
        train, _ = split.leave_one_out(movielens_100k(), by="timestamp", seed=0)
        for seed, p in enumerate(paths.values()):
            NCF(epochs=2, seed=seed, device="cpu").fit(train, validation=None).save(p)
    users = load_model(paths["a"]).user_map_.ids[:200].tolist()
    expected = {}
    for name, p in paths.items():
        m = load_model(p)
        ids, _ = m.recommend(users, k=10)
        expected[name] = {u: row.tolist() for u, row in zip(users, ids)}

    key = "load-test"
    auth = {"Authorization": f"Bearer {key}"}
    app = create_app(paths["a"], api_key=key, handle_sighup=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)

    stop = threading.Event()
    lock = threading.Lock()
    lat: list[float] = []
    failures: dict[str, int] = {}
    answered = {"a": 0, "b": 0}
    reloads = {"ok": 0, "failed": 0}

    def fail(why: str) -> None:
        with lock:
            failures[why] = failures.get(why, 0) + 1

    def client(seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=30) as c:
            while not stop.is_set():
                batch = rng.random() < 0.1
                us = [users[j] for j in rng.integers(0, len(users), 20 if batch else 1)]
                t = time.perf_counter()
                try:
                    if batch:
                        r = c.post("/v1/recommendations", json={"users": us, "k": 10})
                    else:
                        r = c.get(f"/v1/users/{us[0]}/recommendations", params={"k": 10})
                except httpx.HTTPError as e:
                    fail(type(e).__name__)
                    continue
                dt = time.perf_counter() - t
                if r.status_code != 200:
                    fail(str(r.status_code))
                    continue
                body = r.json()
                rows = [body] if not batch else body["results"]
                for u, row in zip(us, rows):
                    got = [it["id"] for it in row["items"]]
                    which = [k for k in expected if expected[k][u] == got]
                    if not which:
                        fail("answer of neither model")
                    else:
                        with lock:
                            answered[which[0]] += 1
                with lock:
                    lat.append(dt)

    def reloader() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=60) as c:
            n = 0
            while not stop.is_set():
                n += 1
                r = c.post("/v1/admin/reload", json={"path": str(paths["b" if n % 2 else "a"])})
                reloads["ok" if r.status_code == 200 else "failed"] += 1
                time.sleep(args.reload_every)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    threads.append(threading.Thread(target=reloader))
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(args.seconds)
    stop.set()
    for t in threads:
        t.join(60)
    wall = time.perf_counter() - t0
    server.should_exit = True
    thread.join(10)

    lat.sort()
    q = statistics.quantiles(lat, n=100) if len(lat) > 100 else [float("nan")] * 99
    print(
        f"{len(lat)} requests in {wall:.1f}s ({len(lat) / wall:.0f}/s) from {args.clients} clients; "
        f"{reloads['ok']} reloads ok, {reloads['failed']} failed"
    )
    print(f"latency p50 {1000 * q[49]:.1f} ms, p99 {1000 * q[98]:.1f} ms, max {1000 * lat[-1]:.1f} ms")
    print(f"answers by model: {answered}; failures: {failures or 'none'}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
