"""The cap on open connections, below the process's file-descriptor limit.

Without it, a peer that opens idle connections until ``accept`` fails with ``EMFILE`` stops
every request and every stream until its connections time out. With it:

* At most :attr:`ConnectionCap.max_connections` connections are open:
  ``RLIMIT_NOFILE`` (soft) minus :data:`RESERVED_FDS` descriptors kept for everything else
  (the listener, epoll, log files, REST clients, TTS processes).
* Connections that are not live calls (HTTP requests, and connections whose head has not
  arrived yet) may fill only :attr:`ConnectionCap.max_requests` of them: the rest
  (:data:`CALL_HEADROOM`, a quarter) is headroom kept for the streams of calls.
* A connection beyond either bound first makes room by closing the connection that has been
  *waiting for its client* the longest (for a request head or body: an idle keep-alive
  connection, or a slow or silent peer); a request being answered or a live call is never
  closed for it. Only when
  none is waiting is the new connection refused: ``503`` with ``Retry-After: 1`` and
  ``Connection: close``, written at once without reading the request, counted in
  ``callflow_connections_refused_total`` and logged (rate-limited).

So the streams of live calls always get through: a stream's head arrives at once, so it
waits for nothing, while a flood of idle connections only ever evicts its own kind.
"""

from __future__ import annotations

import resource

import trio

__all__ = ["CALL_HEADROOM", "REFUSAL", "RESERVED_FDS", "ConnectionCap"]

RESERVED_FDS = 64
"""Descriptors never used for connections."""

CALL_HEADROOM = 0.25
"""Share of :attr:`ConnectionCap.max_connections` that only live calls may use."""

_BODY = b"server at its connection limit; retry\n"
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: " + str(len(_BODY)).encode() + b"\r\nretry-after: 1\r\n"
    b"connection: close\r\n\r\n" + _BODY
)
"""The complete response to a connection over the cap."""


def descriptor_limit() -> int:
    """The process's soft ``RLIMIT_NOFILE`` (65 536 when unlimited)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 65536 if soft == resource.RLIM_INFINITY else int(soft)


class ConnectionCap:
    """Which connections are open, and whether one more may be (module docstring).

    Args:
        max_connections: connections open at once (default: the descriptor limit minus
            :data:`RESERVED_FDS`, at least 8).
    """

    def __init__(self, max_connections: int | None = None) -> None:
        if max_connections is None:
            max_connections = max(8, descriptor_limit() - RESERVED_FDS)
        self.max_connections = max_connections
        self.max_requests = max(1, max_connections - max(1, int(max_connections * CALL_HEADROOM)))
        # (dicts as sets: at a few hundred entries a set takes about twice the bytes per entry)
        self._open: dict[trio.CancelScope, None] = {}
        self._calls: dict[trio.CancelScope, None] = {}
        self._waiting: dict[trio.CancelScope, None] = {}  # oldest first
        self.evicted = 0
        """Connections closed to make room (waiting for a head the longest)."""

    @property
    def open(self) -> int:
        """Connections open now."""
        return len(self._open)

    def admit(self, scope: trio.CancelScope) -> bool:
        """Whether the connection of ``scope`` may be served (then it counts as open until
        :meth:`release`); makes room first by cancelling the longest-waiting connection."""
        if len(self._open) >= self.max_connections or (
            len(self._open) - len(self._calls) >= self.max_requests
        ):
            if not self._waiting:
                return False
            oldest = next(iter(self._waiting))
            self.stop_waiting(oldest)
            del self._open[oldest]  # its descriptor is released as its task ends
            oldest.cancel()
            self.evicted += 1
        self._open[scope] = None
        return True

    def waiting(self, scope: trio.CancelScope) -> None:
        """The connection is waiting for its client (a request head or body), so it may be
        closed to make room."""
        if scope in self._open:
            self._waiting[scope] = None

    def stop_waiting(self, scope: trio.CancelScope) -> None:
        """What it waited for arrived (or the connection ends)."""
        self._waiting.pop(scope, None)

    def became_call(self, scope: trio.CancelScope) -> None:
        """The connection is now a live call's stream."""
        self.stop_waiting(scope)
        if scope in self._open:
            self._calls[scope] = None

    def release(self, scope: trio.CancelScope) -> None:
        """The connection ended."""
        self.stop_waiting(scope)
        self._open.pop(scope, None)
        self._calls.pop(scope, None)

    def requests(self) -> list[trio.CancelScope]:
        """The scopes of the connections open now that are not live calls (HTTP requests,
        or streams not yet accepted)."""
        calls = self._calls
        return [scope for scope in self._open if scope not in calls]
