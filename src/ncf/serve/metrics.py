"""Prometheus text exposition of request counts and latency histograms, without a client library.

Updated from the ASGI middleware on the event loop (one thread), so plain dicts suffice.
With ``--workers N`` each worker process keeps its own numbers (scrape each, or use one worker).
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict

# Seconds; the service aims at p99 < 25 ms, so the buckets are dense below 0.1 s.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.hist: defaultdict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.sums: Counter[str] = Counter()
        self.reloads: Counter[str] = Counter({"ok": 0, "failed": 0})
        self.in_flight = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, status)] += 1
        self.hist[route][bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sums[route] += seconds

    def render(self, generation: int) -> bytes:
        out = [
            "# HELP ncf_http_requests_total HTTP requests by method, route template and status.",
            "# TYPE ncf_http_requests_total counter",
        ]
        for (method, route, status), n in sorted(self.requests.items()):
            out.append(
                f'ncf_http_requests_total{{method="{_esc(method)}",route="{_esc(route)}",status="{status}"}} {n}'
            )
        out += [
            "# HELP ncf_http_request_duration_seconds Request latency by route template.",
            "# TYPE ncf_http_request_duration_seconds histogram",
        ]
        for route in sorted(self.hist):
            counts = self.hist[route]
            r = _esc(route)
            cum = 0
            for le, c in zip(BUCKETS, counts):
                cum += c
                out.append(f'ncf_http_request_duration_seconds_bucket{{route="{r}",le="{le}"}} {cum}')
            cum += counts[-1]
            out.append(f'ncf_http_request_duration_seconds_bucket{{route="{r}",le="+Inf"}} {cum}')
            out.append(f'ncf_http_request_duration_seconds_sum{{route="{r}"}} {self.sums[route]:.6f}')
            out.append(f'ncf_http_request_duration_seconds_count{{route="{r}"}} {cum}')
        out += [
            "# HELP ncf_model_reloads_total Model reloads by result.",
            "# TYPE ncf_model_reloads_total counter",
            *(f'ncf_model_reloads_total{{result="{k}"}} {v}' for k, v in sorted(self.reloads.items())),
            "# HELP ncf_model_generation How many times a model was loaded into this process (1 = the start-up load).",
            "# TYPE ncf_model_generation gauge",
            f"ncf_model_generation {generation}",
            "# HELP ncf_http_requests_in_flight Requests being handled now.",
            "# TYPE ncf_http_requests_in_flight gauge",
            f"ncf_http_requests_in_flight {self.in_flight}",
        ]
        return ("\n".join(out) + "\n").encode()
