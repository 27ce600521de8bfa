"""Load test of `ncf serve`: throughput and p50/p95/p99 latency at 1, 8 and 32 concurrent clients,
plus a run with a model reload every second. Loopback only; request count and duration are bounded.

Before measuring, one request per user fills the server's per-model top-N cache (the steady state
of a long-running server; ``--cold`` skips it, ``--cache-top 0`` scores every request live). The
reload run starts a fresh cache with every reload, so most of its requests are scored live.

The server is a separate process (`python -m ncf serve BUNDLE`, one uvicorn worker, access log on,
written to a file). The client is this process: asyncio with one keep-alive HTTP/1.1 connection per
simulated client and a minimal hand-written request/response codec, so the client's own overhead
stays small next to the server's. Every response is parsed and checked (status 200, k items).

    python benchmarks/serve.py --bundle runs/ml100k              # trains NeuMF on ML-100k first if missing
    python benchmarks/serve.py --bundle runs/ml100k --requests 10000 --clients 1,8,32 --reload-every 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson

HOST = "127.0.0.1"
KEY = "bench-key"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live children (Linux /proc): the server's CPU per request."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (OSError, ValueError):
            pass
    return total


def ensure_bundle(path: Path) -> None:
    if (path / "model.safetensors").exists():
        return
    from ncf import NCF
    from ncf.data.movielens import movielens_100k

    print(f"training NeuMF (defaults, seed 42) on MovieLens-100k -> {path}", flush=True)
    NCF(seed=42).fit(movielens_100k()).save(path)


class Conn:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        self.r, self.w = reader, writer
        self.head = f"Host: {HOST}:{port}\r\nAuthorization: Bearer {KEY}\r\n"

    @classmethod
    async def open(cls, port: int) -> Conn:
        r, w = await asyncio.open_connection(HOST, port)
        return cls(r, w, port)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        extra = "Content-Type: application/json\r\n" if body else ""
        self.w.write(
            f"{method} {path} HTTP/1.1\r\n{self.head}{extra}Content-Length: {len(body)}\r\n\r\n".encode() + body
        )
        status_line = await self.r.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.r.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.r.readexactly(length)

    def close(self) -> None:
        self.w.close()


async def run_load(
    port: int,
    users: np.ndarray,
    *,
    clients: int,
    requests: int,
    max_seconds: float,
    k: int,
    seed: int,
    reload_every: float | None = None,
    reload_paths: list[str] | None = None,
    control: bool = False,
    order: np.ndarray | None = None,
) -> dict:
    rng = np.random.default_rng(seed)
    picks = users[order] if order is not None else users[rng.integers(0, len(users), requests)]
    next_i = 0
    lat = np.full(requests, np.nan)
    failures: list[str] = []
    deadline = time.perf_counter() + max_seconds
    done = asyncio.Event()

    async def client() -> None:
        nonlocal next_i
        conn = await Conn.open(port)
        try:
            while next_i < requests and time.perf_counter() < deadline:
                i = next_i
                next_i += 1
                t0 = time.perf_counter()
                try:
                    path = "/health" if control else f"/v1/users/{picks[i]}/recommendations?k={k}"
                    status, body = await conn.request("GET", path)
                    lat[i] = time.perf_counter() - t0
                    if status != 200:
                        failures.append(f"{status}: {body[:200]!r}")
                    elif not control and len(orjson.loads(body)["items"]) != k:
                        failures.append(f"200 with a short list: {body[:200]!r}")
                except Exception as e:  # noqa: BLE001 - a failed request is counted, not fatal
                    failures.append(f"{type(e).__name__}: {e}")
                    conn.close()
                    conn = await Conn.open(port)
        finally:
            conn.close()

    reloads: list[tuple[int, float]] = []

    async def reloader() -> None:
        conn = await Conn.open(port)
        j = 0
        try:
            while not done.is_set():
                try:
                    await asyncio.wait_for(done.wait(), reload_every)
                    break
                except TimeoutError:
                    pass
                path = reload_paths[j % len(reload_paths)]
                j += 1
                t0 = time.perf_counter()
                status, body = await conn.request("POST", "/v1/admin/reload", orjson.dumps({"path": path}))
                reloads.append((status, time.perf_counter() - t0))
                if status != 200:
                    failures.append(f"reload {status}: {body[:200]!r}")
        finally:
            conn.close()

    t_start = time.perf_counter()
    rtask = asyncio.create_task(reloader()) if reload_every else None
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - t_start
    done.set()
    if rtask:
        await rtask
    ok = lat[~np.isnan(lat)]
    ms = ok * 1000
    res = {
        "clients": clients,
        "requests": int(len(ok)),
        "failed": len(failures),
        "seconds": round(wall, 2),
        "throughput_rps": round(len(ok) / wall, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
        "failures_sample": failures[:5],
    }
    if reload_every:
        res["reloads"] = len(reloads)
        res["reloads_ok"] = sum(s == 200 for s, _ in reloads)
        res["reload_ms_median"] = round(float(np.median([t for _, t in reloads])) * 1000, 1) if reloads else None
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default="runs/ml100k", help="NeuMF bundle (trained on ML-100k if missing)")
    ap.add_argument("--clients", default="1,8,32", help="concurrency levels")
    ap.add_argument("--requests", type=int, default=10_000, help="requests per level (bounded)")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="stop a level after this long")
    ap.add_argument("--warmup", type=int, default=300, help="warm-up requests (random users) before measuring")
    ap.add_argument(
        "--cold",
        action="store_true",
        help="skip the warm-up pass over every user: measure with the per-model top-N cache empty at the start",
    )
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument(
        "--reload-every", type=float, default=1.0, help="seconds between reloads in the reload run (0: skip)"
    )
    ap.add_argument("--reload-clients", type=int, default=8)
    ap.add_argument(
        "--control",
        action="store_true",
        help="also run 8 clients against GET /health: the HTTP stack's own floor on this machine",
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server worker processes (the reload run needs 1: an admin reload reaches one worker)",
    )
    ap.add_argument("--cache-top", type=int, default=100, help="the server's --cache-top (0: score every request live)")
    ap.add_argument("--workdir", default="runs/serve_bench", help="server log and the second bundle go here")
    ap.add_argument("--json", default=None, help="write the results here as JSON")
    args = ap.parse_args()

    bundle = Path(args.bundle)
    ensure_bundle(bundle)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    twin = work / "bundle_b"  # reloads alternate between two folders, so each is a real swap
    twin.mkdir(exist_ok=True)
    shutil.copy2(bundle / "model.safetensors", twin / "model.safetensors")

    from ncf.loading import load_model

    users = np.asarray(load_model(bundle).user_map_.ids)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    log = open(work / "server.log", "w")  # noqa: SIM115 - closed below
    cmd = [
        sys.executable,
        "-m",
        "ncf",
        "serve",
        str(bundle),
        "--port",
        str(port),
        "--api-key",
        KEY,
        "--cache-top",
        str(args.cache_top),
        "--workers",
        str(args.workers),
    ]
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
    results: dict = {
        "bundle": str(bundle),
        "n_users": int(len(users)),
        "cpus": os.cpu_count(),
        "cache_top": args.cache_top,
        "workers": args.workers,
        "loadavg_before": os.getloadavg(),
        "levels": [],
    }
    try:
        t0 = time.monotonic()

        async def wait_ready() -> None:
            while True:
                try:
                    conn = await Conn.open(port)
                    status, _ = await conn.request("GET", "/ready")
                    conn.close()
                    if status == 200:
                        return
                except OSError:
                    pass
                if server.poll() is not None or time.monotonic() - t0 > 120:
                    raise SystemExit(f"server did not start; see {work / 'server.log'}")
                await asyncio.sleep(0.2)

        asyncio.run(wait_ready())
        print(f"server ready in {time.monotonic() - t0:.1f}s; load average {os.getloadavg()}", flush=True)
        asyncio.run(run_load(port, users, clients=8, requests=args.warmup, max_seconds=30, k=args.k, seed=99))
        if not args.cold:  # one request per user: the steady state of a long-running server (its cache is full)
            asyncio.run(
                run_load(
                    port,
                    users,
                    clients=8,
                    requests=len(users),
                    max_seconds=120,
                    k=args.k,
                    seed=0,
                    order=np.arange(len(users)),
                )
            )
        results["warm"] = not args.cold
        levels = [int(c) for c in args.clients.split(",") if c.strip()]
        for c in levels:
            cpu0 = cpu_seconds(server.pid)
            r = asyncio.run(
                run_load(port, users, clients=c, requests=args.requests, max_seconds=args.max_seconds, k=args.k, seed=c)
            )
            r["server_cpu_ms_per_request"] = round((cpu_seconds(server.pid) - cpu0) / max(r["requests"], 1) * 1000, 2)
            r["loadavg_1m"] = round(os.getloadavg()[0], 2)
            results["levels"].append(r)
            print(json.dumps(r), flush=True)
        if args.control:
            cpu0 = cpu_seconds(server.pid)
            r = asyncio.run(
                run_load(
                    port,
                    users,
                    clients=8,
                    requests=args.requests,
                    max_seconds=args.max_seconds,
                    k=args.k,
                    seed=8,
                    control=True,
                )
            )
            r["server_cpu_ms_per_request"] = round((cpu_seconds(server.pid) - cpu0) / max(r["requests"], 1) * 1000, 2)
            r["loadavg_1m"] = round(os.getloadavg()[0], 2)
            r["control"] = "GET /health"
            results["control"] = r
            print(json.dumps(r), flush=True)
        if args.reload_every > 0 and args.workers == 1:
            cpu0 = cpu_seconds(server.pid)
            r = asyncio.run(
                run_load(
                    port,
                    users,
                    clients=args.reload_clients,
                    requests=args.requests,
                    max_seconds=args.max_seconds,
                    k=args.k,
                    seed=7,
                    reload_every=args.reload_every,
                    reload_paths=[str(twin.resolve()), str(bundle.resolve())],
                )
            )
            r["server_cpu_ms_per_request"] = round((cpu_seconds(server.pid) - cpu0) / max(r["requests"], 1) * 1000, 2)
            r["loadavg_1m"] = round(os.getloadavg()[0], 2)
            r["reload_every_s"] = args.reload_every
            results["reload_run"] = r
            print(json.dumps(r), flush=True)
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    print()
    print(
        "| clients | requests | failed | throughput (req/s) | p50 ms | p95 ms | p99 ms | max ms | server CPU ms/req | load avg |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = [
        *results["levels"],
        *([results["reload_run"]] if "reload_run" in results else []),
        *([results["control"]] if "control" in results else []),
    ]
    for r in rows:
        tag = (
            f"{r['clients']}, control: GET /health"
            if "control" in r
            else f"{r['clients']} + reload every {r['reload_every_s']:g}s ({r['reloads_ok']}/{r['reloads']} ok)"
            if "reloads" in r
            else str(r["clients"])
        )
        print(
            f"| {tag} | {r['requests']} | {r['failed']} | {r['throughput_rps']} | {r['p50_ms']} | {r['p95_ms']} | "
            f"{r['p99_ms']} | {r['max_ms']} | {r['server_cpu_ms_per_request']} | {r['loadavg_1m']} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if all(r["failed"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
