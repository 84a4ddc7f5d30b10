"""WebSocket keepalive: ping every call's socket, and give up a peer that stops answering.

Plivo's troubleshooting page asks for it ("Connection Drops Mid-Call … Timeout: Ensure your
WebSocket server sends periodic pings to keep connection alive"; the shared seed
``000_b4a070776f94f2d7.txt``). Pings keep idle-timing middleboxes (NAT, load balancers) from
dropping a quiet connection, and their pongs are what tells a live peer from one that
stopped sending without a FIN or RST (a crashed host, a pulled cable, a NAT that forgot the
connection): TCP alone notices that only after minutes of retransmission, if we write, and
never if we only read.

The rule, per socket: every ``ping_interval`` seconds a ping goes out (coalesced with the
call's writes); if no pong has arrived ``pong_timeout`` seconds later, the connection is
given up as lost: :meth:`~callflow.server._wsfast.FastWebSocketTransport.abort` closes the
TCP stream without a closing handshake and the call's reader gets
``TransportClosed(1006, "no pong …")``, the same abnormal close a reset gives, so the runtime
treats it as a dropped link (the call may re-attach when Plivo reconnects). A silent peer is
therefore noticed at most ``ping_interval + pong_timeout`` seconds after it fell silent.

A pong that came but is not read yet does not make a peer silent: before giving a socket up
the pinger asks whether the peer's bytes wait unread (``has_unread``: the kernel's receive
queue, or what the read loop handed back). If so, this server is behind (its loop stalled by
a flow that blocked, or saturated), not the peer, and the check is made once more
``pong_timeout`` seconds later; a socket still without a pong then is given up. One deferral
per ping, so a peer whose bytes are never read is still let go.

Any pong counts, whatever its payload (RFC 6455 §5.5.3 allows unsolicited pongs as a
heartbeat). Only pongs count, not media: Plivo sends media about 50 times a second while
the stream has an inbound track, but a stream with ``audioTrack="outbound"`` sends none, and
timing every media frame would add work to the one path that runs 50 times a second per
call; a pong proves the same within ``pong_timeout``.

The cost: one :class:`Pinger` task per server keeps every socket's timer, in two queues
ordered by due time (every entry of a queue was added with the same delay, so each stays
sorted with no heap); a watched socket holds one small :class:`Watch` entry (about 100
bytes) and a ping frame per ``ping_interval``, nothing per message. A task per call, as
this was first written, held 5 KB of every parked call (a task, its nursery, two sleeps:
docs/performance.md, "Memory per idle call").
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Final

import attrs
import trio

from callflow.runtime._sync import Signal
from callflow.server._wsfast import FastWebSocketTransport

__all__ = [
    "DEFAULT_KEEPALIVE",
    "DEFAULT_PING_INTERVAL",
    "DEFAULT_PONG_TIMEOUT",
    "Keepalive",
    "Pinger",
    "Watch",
]

log = logging.getLogger("callflow.server")

DEFAULT_PING_INTERVAL = 10.0
"""Seconds between pings. Well under the idle timeouts of common middleboxes (60 s for AWS's
load balancers and nginx's ``proxy_read_timeout``), and one ~6-byte frame each way per call
every 10 s is nothing next to 50 media messages a second."""

DEFAULT_PONG_TIMEOUT = 10.0
"""Seconds a ping waits for a pong before the peer is given up. A live peer answers within a
round trip (Plivo's latency target for the network leg is under 100 ms); 10 s tolerates a
congested link or a pong queued behind a burst of media, and still notices a dead peer within
20 s of its last sign of life (``DEFAULT_PING_INTERVAL + DEFAULT_PONG_TIMEOUT``)."""


@attrs.frozen(kw_only=True)
class Keepalive:
    """Keepalive settings of a server's stream sockets (see the module doc).

    Attributes:
        ping_interval: seconds between pings, > 0.
        pong_timeout: seconds a ping waits for its pong before the socket is given up, > 0.

    Raises:
        ValueError: a value is not a positive number of seconds.
    """

    ping_interval: float = attrs.field(default=DEFAULT_PING_INTERVAL)
    pong_timeout: float = attrs.field(default=DEFAULT_PONG_TIMEOUT)

    @ping_interval.validator
    @pong_timeout.validator
    def _positive(self, attribute: attrs.Attribute[float], value: float) -> None:
        if not value > 0:
            raise ValueError(f"{attribute.name} must be > 0 seconds, not {value!r}")


DEFAULT_KEEPALIVE: Final = Keepalive()
"""The settings ``serve_flows`` uses unless told otherwise."""


class Watch:
    """One socket's place in a :class:`Pinger` (see :meth:`Pinger.watch`)."""

    __slots__ = ("deferred", "due", "on_timeout", "pings", "pongs", "transport")

    def __init__(
        self, transport: FastWebSocketTransport, due: float, on_timeout: Callable[[], object] | None
    ) -> None:
        self.transport: FastWebSocketTransport | None = transport
        self.due = due
        self.on_timeout = on_timeout
        self.pings = 0
        self.pongs = 0
        self.deferred = False  # this ping's check was put off once: bytes waited unread

    def stop(self) -> None:
        """Stop watching (idempotent); the pinger lets the socket go at once."""
        self.transport = None
        self.on_timeout = None

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Pinger:
    """Pings every watched socket and gives up one whose pong does not come in time (the
    rule in the module doc): one task per server, :meth:`run`, for every call's socket.

    Per socket, ``settings.ping_interval`` seconds after it is watched a ping goes out; if no
    pong has come ``settings.pong_timeout`` seconds later, the socket is aborted
    (:meth:`~callflow.server._wsfast.FastWebSocketTransport.abort`, so its reader gets
    ``TransportClosed(1006, "no pong …")``) and the watch's ``on_timeout`` is called; else
    the next ping is due ``ping_interval`` seconds after that check.
    """

    def __init__(self, settings: Keepalive) -> None:
        self.settings = settings
        self._to_ping: deque[Watch] = deque()
        self._to_check: deque[Watch] = deque()
        self._changed = Signal()
        self._nursery: trio.Nursery | None = None

    def watch(
        self, transport: FastWebSocketTransport, on_timeout: Callable[[], object] | None = None
    ) -> Watch:
        """Start pinging ``transport``; ``on_timeout`` (e.g. a counter's ``inc``) is called if
        it is given up. Call :meth:`Watch.stop` when the socket's call is done with it, or use
        the watch as the context manager of a ``with`` block (it stops at its end; a plain
        object, not a generator: a call keeps it for its whole life)."""
        watch = Watch(transport, trio.current_time() + self.settings.ping_interval, on_timeout)
        self._to_ping.append(watch)
        if len(self._to_ping) == 1:
            # The run loop's wake-up may now be too late. Otherwise it is not: every watch
            # waits the same interval, so a new one is due after those already queued. (Waking
            # it for nothing would leave one more stale entry in trio's deadline heap per
            # call started: docs/performance.md, step 9.)
            self._changed.set()
        return watch

    def __len__(self) -> int:
        """Sockets watched (stopped watches included until their next due time)."""
        return len(self._to_ping) + len(self._to_check)

    async def run(self) -> None:
        """Keep every watched socket's timers until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery  # for pings on streams that are not plain sockets
            while True:
                self._due(trio.current_time())
                heads = [q[0].due for q in (self._to_ping, self._to_check) if q]
                self._changed = Signal()  # set by watch(): the next due time may be sooner
                with trio.move_on_at(min(heads) if heads else math.inf):
                    await self._changed.wait()

    def _due(self, now: float) -> None:
        """Ping the sockets whose ping is due; check those whose pong is due."""
        settings, to_ping, to_check = self.settings, self._to_ping, self._to_check
        while to_ping and to_ping[0].due <= now:
            watch = to_ping.popleft()
            transport = watch.transport
            if transport is None or transport.close_code is not None:
                continue
            watch.pongs = transport.pongs
            watch.pings += 1
            payload = watch.pings.to_bytes(4, "big")
            if not transport.ping_nowait(payload) and self._nursery is not None:
                self._nursery.start_soon(transport.ping, payload)
            watch.due = now + settings.pong_timeout
            to_check.append(watch)
        while to_check and to_check[0].due <= now:
            watch = to_check.popleft()
            transport = watch.transport
            if transport is None or transport.close_code is not None:
                continue
            if transport.pongs != watch.pongs:
                watch.deferred = False
                watch.due = now + settings.ping_interval
                to_ping.append(watch)
                continue
            if not watch.deferred and transport.has_unread():  # we are behind, not the peer
                watch.deferred = True
                watch.due = now + settings.pong_timeout
                to_check.append(watch)
                continue
            reason = f"no pong within {settings.pong_timeout:g} s of a ping"
            log.warning("%s peer silent: %s; connection given up as lost", transport.name, reason)
            transport.abort(reason)
            if watch.on_timeout is not None:
                watch.on_timeout()
            watch.stop()
