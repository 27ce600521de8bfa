"""uvicorn's HTTP protocols with two additions ncf needs: a header timeout, and JSON for uvicorn's own errors.

uvicorn parses the request line and headers before the ASGI app sees anything, and it has no
timeout for that phase: a client that connects and sends half a header line (or nothing) holds
the connection forever. :class:`NcfHttpToolsProtocol` / :class:`NcfH11Protocol` arm a timer
when a connection opens, when a response completes and whenever a new request starts arriving,
and cancel it once a request's headers are complete. When it fires, a client that had sent
part of a request gets ``408`` and the connection is closed; one that had sent nothing is
closed without an answer (as an idle keep-alive connection is). (The body has its own deadline in the ASGI middleware, ``body_timeout``; idle
keep-alive connections are closed by uvicorn's ``timeout_keep_alive``, 5 s.)

uvicorn answers a request it cannot parse with a plain-text 400; these protocols answer the
same JSON ``{"error": "bad_request", "message": ...}`` as every other error of the service.

The timeout is read from ``NCF_SERVE_HEADER_TIMEOUT`` (seconds, default 10) when a connection
opens, so the classes can be named by import string (``ncf serve --workers N`` starts workers
from strings).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import orjson

__all__ = ["DEFAULT_HEADER_TIMEOUT", "HEADER_TIMEOUT_ENV", "protocol_class_path"]

HEADER_TIMEOUT_ENV = "NCF_SERVE_HEADER_TIMEOUT"
DEFAULT_HEADER_TIMEOUT = 10.0

_REASONS = {400: b"Bad Request", 408: b"Request Timeout"}


def _raw_error(status: int, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 error response that closes the connection (written straight to the socket)."""
    body = orjson.dumps({"error": code, "message": message})
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % (
        status,
        _REASONS[status],
        len(body),
    )
    return head + body


def header_timeout() -> float:
    try:
        value = float(os.environ.get(HEADER_TIMEOUT_ENV, DEFAULT_HEADER_TIMEOUT))
    except ValueError:
        return DEFAULT_HEADER_TIMEOUT
    return value if value > 0 else DEFAULT_HEADER_TIMEOUT


class _NcfProtocol:
    """Mixin over uvicorn's protocol classes (both set ``self.cycle`` once a request's headers are parsed)."""

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    _ncf_timer: asyncio.TimerHandle | None = None
    _ncf_timeout: float = DEFAULT_HEADER_TIMEOUT

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._ncf_timeout = header_timeout()
        self._ncf_arm()  # a client that connects and sends nothing is a slow client too

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        if self._ncf_awaiting_headers():
            self._ncf_arm()  # the next request has started: its headers have the same deadline
        else:
            self._ncf_cancel()

    def connection_lost(self, exc: Exception | None) -> None:
        self._ncf_cancel()
        super().connection_lost(exc)  # type: ignore[misc]

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing() and self._ncf_awaiting_headers():
            self._ncf_arm()  # the next request (perhaps already half received, pipelined) has the same deadline

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to an unparseable request, as the service's JSON error."""
        self._ncf_cancel()
        if not self.transport.is_closing():
            self.transport.write(_raw_error(400, "bad_request", f"{msg.rstrip('.')}: not a valid HTTP/1.1 request"))
            self.transport.close()

    def _ncf_awaiting_headers(self) -> bool:
        cycle = getattr(self, "cycle", None)
        return cycle is None or bool(getattr(cycle, "response_complete", False))

    def _ncf_partial(self) -> bool:
        """Whether part of the next request has arrived (else the connection is merely idle)."""
        conn = getattr(self, "conn", None)  # h11 buffers an incomplete request head
        if conn is not None:
            return bool(conn.trailing_data[0])
        return bool(getattr(self, "_ncf_begun", False))

    def _ncf_arm(self) -> None:
        if self._ncf_timer is None:
            self._ncf_timer = self.loop.call_later(self._ncf_timeout, self._ncf_expired)

    def _ncf_cancel(self) -> None:
        if self._ncf_timer is not None:
            self._ncf_timer.cancel()
            self._ncf_timer = None

    def _ncf_expired(self) -> None:
        self._ncf_timer = None
        if self._ncf_awaiting_headers() and not self.transport.is_closing():
            if self._ncf_partial():
                msg = f"the request headers did not arrive within {self._ncf_timeout:g} s; the connection is closed"
                self.transport.write(_raw_error(408, "request_timeout", msg))
            self.transport.close()


from uvicorn.protocols.http.h11_impl import H11Protocol  # noqa: E402


class NcfH11Protocol(_NcfProtocol, H11Protocol):
    """uvicorn's h11 protocol with the header timeout and JSON 400s."""


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is optional (the serve extra installs it)
    HttpToolsProtocol = None  # type: ignore[assignment,misc]
else:

    class NcfHttpToolsProtocol(_NcfProtocol, HttpToolsProtocol):
        """uvicorn's httptools protocol (the fast C parser) with the header timeout and JSON 400s."""

        _ncf_begun = False  # between the first byte of a request and the end of its headers

        def on_message_begin(self) -> None:
            self._ncf_begun = True
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._ncf_begun = False
            super().on_headers_complete()


def protocol_class_path() -> str:
    """The import string of the protocol class to give uvicorn (``http=``): httptools when installed."""
    name = "NcfH11Protocol" if HttpToolsProtocol is None else "NcfHttpToolsProtocol"
    return f"ncf.serve.protocol:{name}"
