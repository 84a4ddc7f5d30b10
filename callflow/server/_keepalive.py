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

Any pong counts, whatever its payload (RFC 6455 §5.5.3 allows unsolicited pongs as a
heartbeat). Only pongs count, not media: Plivo sends media about 50 times a second while
the stream has an inbound track, but a stream with ``audioTrack="outbound"`` sends none, and
timing every media frame would add work to the one path that runs 50 times a second per
call; a pong proves the same within ``pong_timeout``. The cost is one small timer task per
call and one ping frame per ``ping_interval``; nothing per message.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Final

import attrs
import trio

from callflow.server._wsfast import FastWebSocketTransport

__all__ = [
    "DEFAULT_KEEPALIVE",
    "DEFAULT_PING_INTERVAL",
    "DEFAULT_PONG_TIMEOUT",
    "Keepalive",
    "keep_alive",
    "keeping_alive",
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


async def keep_alive(
    transport: FastWebSocketTransport,
    settings: Keepalive,
    on_timeout: Callable[[], object] | None = None,
) -> None:
    """Ping ``transport`` until it closes; abort it (and call ``on_timeout``, e.g. a
    counter's ``inc``) when a pong does not come in time.

    Returns once the transport is closed (by anyone); cancel it to stop sooner.
    """
    pings = 0
    while transport.close_code is None:
        await trio.sleep(settings.ping_interval)
        if transport.close_code is not None:
            return
        pongs = transport.pongs
        pings += 1
        await transport.ping(pings.to_bytes(4, "big"))
        await trio.sleep(settings.pong_timeout)
        if transport.close_code is None and transport.pongs == pongs:
            reason = f"no pong within {settings.pong_timeout:g} s of a ping"
            log.warning("%s peer silent: %s; connection given up as lost", transport.name, reason)
            transport.abort(reason)
            if on_timeout is not None:
                on_timeout()
            return


@contextlib.asynccontextmanager
async def keeping_alive(
    transport: FastWebSocketTransport,
    settings: Keepalive | None,
    on_timeout: Callable[[], object] | None = None,
) -> AsyncIterator[None]:
    """Run :func:`keep_alive` on ``transport`` for the body of the ``async with`` (nothing
    when ``settings`` is None)."""
    if settings is None:
        yield
        return
    async with trio.open_nursery() as nursery:
        nursery.start_soon(keep_alive, transport, settings, on_timeout)
        try:
            yield
        finally:
            nursery.cancel_scope.cancel()
