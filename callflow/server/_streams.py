"""The stream WebSocket: check the upgrade and its token, complete the handshake on the bytes
h11 already read (:class:`~callflow.server._wsfast.FastWebSocketTransport`), and run the
call's flow on it; the registry of live calls the drain waits for.
"""

from __future__ import annotations

import contextlib
import logging
import time
from urllib.parse import parse_qs

import attrs
import h11
import trio

from callflow._flow import Flow
from callflow.observe import METRICS, WarningLimiter, bind_call, call_label, escape
from callflow.runtime import LiveCalls, PlivoRest, RuntimeConfig, run_call
from callflow.runtime._timeouts import PhaseTimeouts
from callflow.server._drain import CLOSE_GRACE, DRAINED_REASON, FLOW_END_GRACE, Drain
from callflow.server._http import HttpConnection
from callflow.server._keepalive import DEFAULT_KEEPALIVE, Keepalive, Pinger
from callflow.server._routes import Routes, header_dict, peer_host
from callflow.server._token import (
    TOKEN_QUERY_KEY,
    StreamToken,
    StreamTokenError,
    verify_stream_token,
)
from callflow.server._wsfast import FastWebSocketTransport, HandshakeFailed, ReadLoop

log = logging.getLogger("callflow.server")

MAX_MESSAGE_SIZE = 65536
"""Largest WebSocket message accepted, in characters (Plivo's 64 KB limit, PROTOCOL.md §1).
A bigger message closes that call's socket with code 1009."""

HANDSHAKE_TIMEOUT = 10.0
"""Seconds for the WebSocket opening handshake once the upgrade request has been read."""

CLOSE_TIMEOUT = 5.0
"""Seconds a call's socket waits for the peer's close frame."""

wall_clock = time.time
"""Unix seconds, for the stream token's expiry (a test may set another clock here)."""


@attrs.frozen
class Upgrade:
    """A stream upgrade whose token checked out (:meth:`Streams.check_upgrade`): the flow
    at its path and the verified token."""

    flow: Flow
    token: StreamToken


@attrs.define(eq=False)
class _LiveStream:
    """A stream connection whose token checked out: its call id and, once the handshake is
    done, its transport."""

    call_uuid: str | None
    transport: FastWebSocketTransport | None = None


class Streams:
    """Upgrades on stream paths, and the calls running on them (one per server).

    Attributes:
        read_loop: reads every parked call's socket (Linux); set by ``serve_flows``.
        keepalive: pings every call's socket and gives up one whose pong does not come
            (:mod:`callflow.server._keepalive`); ``None``: no pings. Set by ``serve_flows``.
        pinger: keeps those pings for every call's socket, one task per server (made from
            ``keepalive`` and run by ``serve_flows``); ``None``: no pings.
    """

    def __init__(
        self,
        routes: Routes,
        *,
        auth_token: str | None,
        live_calls: LiveCalls,
        rest: PlivoRest | None,
        config: RuntimeConfig | None = None,
    ) -> None:
        self.routes = routes
        self.auth_token = auth_token or None
        self.live_calls = live_calls
        self.rest = rest
        self.config = config
        self.read_loop: ReadLoop | None = None
        self.keepalive: Keepalive | None = DEFAULT_KEEPALIVE
        self.pinger: Pinger | None = None
        self.timeouts = PhaseTimeouts()
        """The head's, the handshake's and ``start``'s time limits, and the bound of each
        call's waits for checkpoint acks (``_app`` runs its task)."""
        self._calls: dict[trio.CancelScope, _LiveStream] = {}
        self._calls_changed = trio.Event()
        self.refusals = WarningLimiter(
            log, "ws_refused", "refused stream upgrades", where="from this peer"
        )
        """Refused upgrades are logged at most 10 a minute per peer host (then a summary)."""

    def __len__(self) -> int:
        """Stream connections running a call (or about to: handshake, waiting for start)."""
        return len(self._calls)

    async def check_upgrade(self, conn: HttpConnection, head: h11.Request) -> Upgrade | None:
        """The upgrade's flow and verified token, or None once it has been refused with an
        HTTP error (404: no stream at this path; 400: not a WebSocket 13 handshake; 403: the
        stream token is rejected, see :mod:`callflow.server._token`).

        Nothing of ``head`` is kept in what it returns, so the caller can let the request
        head go before the call's hour on the socket (:meth:`serve_call`).
        """
        target = head.target.decode("ascii", "replace")
        path, _, query = target.partition("?")
        route = self.routes.get(path)
        headers = header_dict(head.headers)
        if route is None or route[0] != "stream" or route[1] is None:
            self.refusals.warning(
                f"peer={peer_host(conn.client)}",
                "ws 404 %s from %s: no stream at this path",
                escape(path),
                conn.client,
            )
            await conn.respond(404, b"no stream at this path\n", close=True)
            return None
        flow = route[1]
        if headers.get("sec-websocket-version") != "13" or not headers.get("sec-websocket-key"):
            self.refusals.warning(
                f"peer={peer_host(conn.client)}",
                "ws 400 %s from %s: not a WebSocket 13 handshake",
                escape(path),
                conn.client,
            )
            await conn.respond(
                400,
                b"expected a WebSocket version 13 handshake\n",
                close=True,
                headers=[("sec-websocket-version", "13")],
            )
            return None
        token = self._verify_token(query, path, conn)
        if isinstance(token, str):
            METRICS.for_flow(flow.path).outcomes["refused"].inc()
            await conn.respond(403, f"stream token rejected: {token}\n".encode(), close=True)
            return None
        return Upgrade(flow, token)

    async def serve_call(
        self, conn: HttpConnection, upgrade: Upgrade, call_scope: trio.CancelScope
    ) -> None:
        """Complete the handshake of an upgrade :meth:`check_upgrade` let through and run its
        call; return once the socket is closed.

        ``call_scope`` is the connection's own cancel scope, which the caller has shielded
        from the server's cancellation: only the drain deadline (:meth:`drain`) cancels it,
        and then the socket is still closed cleanly (shielded) before the cancellation goes
        on up. (The call runs in this coroutine's own frame, not one more nested: a live call
        keeps its connection task's stack for its whole life.)
        """
        flow, token = upgrade.flow, upgrade.token
        call = call_label(token.call_uuid)
        live = _LiveStream(token.call_uuid)
        self._calls[call_scope] = live
        try:
            bind_call(call_id=token.call_uuid, flow=flow.path)  # the connection is the call's
            transport = await self._accept(conn, flow, call)
            if transport is None:
                return
            live.transport = transport
            code, reason = 1000, "call ended"
            pinged = (
                self.pinger.watch(transport, METRICS.for_flow(flow.path).pong_timeouts.inc)
                if self.pinger is not None
                else contextlib.nullcontext()
            )
            try:
                with pinged:
                    await run_call(
                        flow,
                        transport,
                        answer_params=token.params,  # (run_call keeps a copy of its own)
                        live_calls=self.live_calls,
                        rest=self.rest,
                        config=self.config,
                        answered_at=token.issued_at,
                        call_uuid=token.call_uuid,
                        timeouts=self.timeouts,
                    )
            except* Exception:
                log.exception("%s run_call for flow %s raised; call closed", call, flow.name)
                code, reason = 1011, "server error"
            finally:
                if call_scope.cancel_called:
                    log.info("%s ws %s: cancelled by the server's drain", call, flow.stream_path)
                with trio.CancelScope(shield=True):
                    await transport.aclose(code, reason)
            if transport.close_code == 1009:
                METRICS.for_flow(flow.path).protocol_error("too_big")
                METRICS.messages_dropped_total.labels(reason="too_big").inc()
                log.warning(
                    "%s ws %s: message over %d bytes from Plivo; socket closed with 1009",
                    call,
                    flow.stream_path,
                    MAX_MESSAGE_SIZE,
                )
        finally:
            del self._calls[call_scope]
            self._calls_changed.set()
            self._calls_changed = trio.Event()

    def _verify_token(self, query: str, path: str, conn: HttpConnection) -> StreamToken | str:
        """The upgrade's verified token, or why it is refused (logged here)."""
        values = parse_qs(query).get(TOKEN_QUERY_KEY)
        try:
            return verify_stream_token(
                values[-1] if values else None,
                path=path,
                auth_token=self.auth_token,
                now=wall_clock(),
                live=self.live_calls.is_live,
            )
        except StreamTokenError as exc:
            if self.auth_token is None and exc.reason == "missing":
                log.info(
                    "call=- ws %s from %s: no stream token (accepted: signatures are off)",
                    path,
                    conn.client,
                )
                return StreamToken(path=path, call_uuid=None, expires_at=0, params={}, signed=False)
            self.refusals.warning(
                f"peer={peer_host(conn.client)}",
                "%s ws 403 %s from %s: stream token rejected: %s",
                call_label(exc.call_uuid),
                escape(path),
                conn.client,
                escape(exc.reason),
            )
            return escape(exc.reason)

    async def _accept(
        self, conn: HttpConnection, flow: Flow, call: str
    ) -> FastWebSocketTransport | None:
        """Complete the WebSocket handshake on the bytes h11 already read (at most
        ``HANDSHAKE_TIMEOUT`` seconds): the open transport, or ``None`` (logged; the
        socket is closed)."""
        transport: FastWebSocketTransport | None = None
        with self.timeouts.limit(HANDSHAKE_TIMEOUT):
            try:
                transport = await FastWebSocketTransport.accept(
                    conn.stream,
                    conn.request_bytes,
                    max_message_size=MAX_MESSAGE_SIZE,
                    close_timeout=CLOSE_TIMEOUT,
                    read_loop=self.read_loop,
                    name=call,
                )
            except HandshakeFailed as exc:
                log.warning(
                    "%s ws %s from %s: %s", call, flow.stream_path, conn.client, escape(exc)
                )
                return None
        if transport is None:
            log.warning(
                "%s ws %s from %s: handshake not done in %.0f s",
                call,
                flow.stream_path,
                conn.client,
                HANDSHAKE_TIMEOUT,
            )
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(conn.stream)
            return None
        conn.upgraded()
        log.info(
            "%s ws %s from %s: stream accepted for flow %s",
            call,
            flow.stream_path,
            conn.client,
            flow.name,
        )
        return transport

    async def _wait_calls(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for every call to end; whether they all did."""
        with trio.move_on_after(seconds):
            while self._calls:
                await self._calls_changed.wait()
        return not self._calls

    async def drain(self, grace: float, drain: Drain) -> None:
        """Give live calls ``grace`` seconds to end on their own, then end them (the timeline
        in :mod:`callflow.server._drain`); returns once no call connection is left, or when
        every step is spent (flows that still run then are counted in ``drain.calls_cut``)."""
        drain.calls_at_start = len(self._calls)
        if self._calls:
            log.info("draining %d live call(s), up to %.0f s", len(self._calls), grace)
        if await self._wait_calls(grace):
            return
        drain.calls_ended_by_server = len(self._calls)
        log.warning(
            "drain deadline (%.0f s): ending %d live call(s) with CallEnded(%r): %s",
            grace,
            len(self._calls),
            DRAINED_REASON,
            _some_calls([live.call_uuid for live in self._calls.values()]),
        )
        for call in self.live_calls:
            call._end(DRAINED_REASON)  # pending and later operations raise CallEnded
        if await self._wait_calls(FLOW_END_GRACE):
            return
        for scope in list(self._calls):
            scope.cancel()
        if await self._wait_calls(CLOSE_GRACE):
            return
        drain.calls_cut = len(self._calls)
        for live in self._calls.values():
            log.warning(
                "%s still not ended %.0f s after the drain deadline; socket cut",
                call_label(live.call_uuid),
                FLOW_END_GRACE + CLOSE_GRACE,
            )
            if live.transport is not None:
                live.transport.abort()
        await self._wait_calls(0.5)


def _some_calls(call_uuids: list[str | None], most: int = 10) -> str:
    """The first ``most`` call labels, and how many more (a log line stays short)."""
    text = " ".join(call_label(c) for c in call_uuids[:most])
    return text + (f" … {len(call_uuids) - most} more" if len(call_uuids) > most else "")
