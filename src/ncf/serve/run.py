"""``ncf serve``: check the arguments, load the bundle once, run uvicorn."""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
from typing import Any

from ncf.errors import ConfigError

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback name or address (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_port(host: str, port: int) -> None:
    """Fail with one line before loading anything when the address cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} on {host} is already in use; pick another with --port") from None
            raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror}); check --host and --port") from None


def log_config(level: str, access_log: bool) -> dict[str, Any]:
    """Uvicorn's own access log is off (ours is structured JSON); everything goes to stderr."""
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "plain"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
            "json": {"format": "%(message)s"},
        },
        "handlers": {"default": handler, "access": {**handler, "formatter": "json"}},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "ncf.serve": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "ncf.serve.access": {
                "handlers": ["access"],
                "level": "INFO" if access_log else "WARNING",
                "propagate": False,
            },
        },
    }


def serve(
    model_dir: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    api_key: str | None = None,
    max_body_bytes: int = 1 << 20,
    log_level: str = "info",
    access_log: bool = True,
    torch_threads: int = 1,
    cache_top: int = 100,
    allowed_hosts: str | None = None,
    header_timeout: float = 10.0,
    body_timeout: float = 30.0,
) -> int:
    """Run the service. ``allowed_hosts`` None: the loopback names when ``host`` is loopback, else any Host."""
    import math

    import uvicorn

    from ncf.serve.app import allowed_host_set, create_app, set_torch_threads
    from ncf.serve.protocol import HEADER_TIMEOUT_ENV, protocol_class_path

    if not 0 < port < 65536:
        raise ConfigError(f"--port == {port}, must be in 1..65535")
    if workers < 1:
        raise ConfigError(f"--workers == {workers}, must be >= 1")
    if max_body_bytes < 1024:
        raise ConfigError(f"--max-body-bytes == {max_body_bytes}, must be >= 1024")
    if torch_threads < 1:
        raise ConfigError(f"--torch-threads == {torch_threads}, must be >= 1")
    if cache_top < 0:
        raise ConfigError(f"--cache-top == {cache_top}, must be >= 0 (0 turns the cache off)")
    for flag, value in (("--header-timeout", header_timeout), ("--body-timeout", body_timeout)):
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{flag} == {value}, must be a number of seconds > 0")
    if allowed_hosts is None:  # DNS rebinding targets loopback services: answer only to loopback names there
        allowed_hosts = ",".join(LOOPBACK) if is_loopback(host) else "*"
    allowed_host_set(allowed_hosts)
    os.environ[HEADER_TIMEOUT_ENV] = str(header_timeout)  # read by the protocol class in every worker
    set_torch_threads(torch_threads)
    api_key = api_key if api_key is not None else (os.environ.get("NCF_API_KEY") or None)
    if host not in LOOPBACK and not api_key:
        print(
            f"ncf serve: warning: listening on {host} without --api-key; anyone who can reach it can query the model",
            file=sys.stderr,
        )
    from ncf.loading import bundle_model_class

    bundle_model_class(model_dir)  # header only: a bad path fails in milliseconds, before binding or loading
    _check_port(host, port)
    logs = log_config(log_level, access_log)
    if workers == 1:
        app = create_app(
            model_dir,
            api_key=api_key,
            max_body_bytes=max_body_bytes,
            cache_top=cache_top,
            allowed_hosts=allowed_hosts,
            body_timeout=body_timeout,
        )  # BundleError -> exit 2
        print(
            f"ncf serve: {app.state.holder.current.info['model_class']} from {model_dir} on http://{host}:{port}/ "
            f"(docs at /docs; SIGHUP or POST /v1/admin/reload reloads)",
            file=sys.stderr,
        )
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_config=logs,
            access_log=False,
            log_level=log_level,
            http=protocol_class_path(),
        )
        return 0
    # Several processes: each worker builds its own app from the environment (the header check above
    # makes a bad path fail with one line instead of N worker tracebacks).
    os.environ["NCF_SERVE_BUNDLE"] = str(model_dir)
    os.environ["NCF_SERVE_MAX_BODY_BYTES"] = str(max_body_bytes)
    os.environ["NCF_SERVE_TORCH_THREADS"] = str(torch_threads)
    os.environ["NCF_SERVE_CACHE_TOP"] = str(cache_top)
    os.environ["NCF_SERVE_ALLOWED_HOSTS"] = allowed_hosts
    os.environ["NCF_SERVE_BODY_TIMEOUT"] = str(body_timeout)
    if api_key:
        os.environ["NCF_API_KEY"] = api_key
    logging.getLogger("ncf.serve").info("starting %d workers", workers)
    # Workers import torch and load the bundle before they answer the supervisor's ping: give them time.
    uvicorn.run(
        "ncf.serve.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=logs,
        access_log=False,
        log_level=log_level,
        timeout_worker_healthcheck=120,
        http=protocol_class_path(),
    )
    return 0
