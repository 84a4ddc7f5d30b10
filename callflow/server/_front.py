"""One TCP connection of the front: HTTP/1.1 requests read with h11, routed to the health,
answer, status and machine-detection handlers, or handed to the stream WebSocket on an
upgrade.

Exception policy: every connection runs in its own task; anything one connection raises
(other than cancellation) is logged and goes no further.
"""

from __future__ import annotations

import logging

import h11
import trio

from callflow.observe import CALL_CONTEXT, METRICS, WarningLimiter, escape
from callflow.observe import render as render_metrics
from callflow.server import _http
from callflow.server._conncap import REFUSAL, ConnectionCap
from callflow.server._drain import Drain, DrainAnswer
from callflow.server._handoff import Handoff
from callflow.server._health import Health
from callflow.server._http import HttpConnection, HttpError, Request
from callflow.server._routes import Routes, header_dict, is_websocket_upgrade, peer, peer_host
from callflow.server._streams import Streams, Upgrade
from callflow.server._webhooks import Webhooks

log = logging.getLogger("callflow.server")


class Front:
    """Connection handling behind ``serve_flows``: one :meth:`handle_handed` per socket.

    Refused requests are logged through a per-peer :class:`~callflow.observe.WarningLimiter`
    (10 lines per peer host a minute, 200 in all, then a summary), every outside value in the
    line escaped and bounded; the error body quotes the same bounded reason.

    Open connections are capped below the descriptor limit, with headroom kept for the
    streams of calls (:class:`~callflow.server._conncap.ConnectionCap`, :attr:`cap`).
    """

    def __init__(
        self,
        routes: Routes,
        *,
        health: Health,
        webhooks: Webhooks,
        streams: Streams,
        drain: Drain,
        drain_answer: DrainAnswer,
        worker: int = 0,
        handoff: Handoff | None = None,
    ) -> None:
        self.routes = routes
        self.handoff = handoff
        self.drain = drain
        self.drain_answer = drain_answer
        self._worker_header = [("x-callflow-worker", str(worker))]
        self.health = health
        self.webhooks = webhooks
        self.streams = streams
        self.refusals = WarningLimiter(
            log, "http_refused", "refused requests", where="from this peer"
        )
        self.cap = ConnectionCap()
        self._over_cap = WarningLimiter(
            log, "connections_refused", "connections refused", where="at the cap"
        )

    def _refused(self, conn: HttpConnection, level: int, msg: str, *args: object) -> None:
        """Log one refused request of ``conn`` (rate-limited per peer host)."""
        self.refusals.log(f"peer={peer_host(conn.client)}", level, msg, *args, stacklevel=3)

    async def handle_handed(
        self,
        stream: trio.SocketStream,
        initial: bytes = b"",
        client: str | None = None,
        *,
        routed: bool = True,
    ) -> None:
        """Serve one TCP connection: HTTP requests, or one WebSocket call after an upgrade.

        ``routed=False``: accepted here (``serve_listeners`` calls this directly), so each
        request may belong to another worker. Otherwise another worker accepted it and handed
        it over: ``initial`` is the bytes it had read, ``client`` the peer as it saw it
        (``None``: this stream's peer)."""
        if client is None:
            client = peer(stream)
        with trio.CancelScope() as scope:
            if not self.cap.admit(scope):
                await self._refuse_over_cap(stream, client)
                return
            conn = HttpConnection(stream, client, initial)
            try:
                served = await self._serve_http(conn, scope, routed)
                if isinstance(served, tuple):
                    conn, upgrade = served  # (the connection handed over, if it was)
                    # a live call: only the drain deadline may end it. (It runs here, not
                    # inside _serve_http: a call keeps its task's stack for its whole life.)
                    scope.shield = True
                    self.cap.became_call(scope)
                    await self.streams.serve_call(conn, upgrade, scope)
                elif served:
                    await conn.linger()
            except* trio.BrokenResourceError:
                log.debug("connection from %s broken by the client", client)
            except* Exception:
                log.exception("connection from %s failed; closed", client)
            finally:
                self.cap.release(scope)

    async def _refuse_over_cap(self, stream: trio.SocketStream, client: str) -> None:
        """503 at once, unread, then close (module docstring of ``_conncap``)."""
        METRICS.connections_refused_total.inc()
        self._over_cap.warning(
            "server",
            "connection from %s refused with 503: %d connections open, the cap is %d "
            "(%d for requests)",
            client,
            self.cap.open,
            self.cap.max_connections,
            self.cap.max_requests,
        )
        with trio.move_on_after(1.0):
            try:
                await stream.send_all(REFUSAL)
                await stream.send_eof()
                with trio.move_on_after(0.2):  # let the peer read it before the close
                    await stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    def close_http(self) -> None:
        """Cancel every connection that is not a live call (the drain's first step)."""
        for scope in self.cap.requests():
            scope.cancel()

    async def _serve_http(
        self, conn: HttpConnection, scope: trio.CancelScope, routed: bool = True
    ) -> bool | tuple[HttpConnection, Upgrade]:
        """Serve requests until the connection ends. True when it should linger before it is
        closed (an error response may have left request bytes unread); False when the client
        has gone; the connection and its :class:`Upgrade` to run when it is a stream
        WebSocket let through."""
        while True:
            head: h11.Request | None = None
            with self.streams.timeouts.limit(_http.HEAD_TIMEOUT):
                try:
                    self.cap.waiting(scope)
                    try:
                        head = await conn.read_head()
                    finally:
                        self.cap.stop_waiting(scope)
                except h11.RemoteProtocolError as exc:
                    status = exc.error_status_hint
                    reason = escape(exc)
                    self._refused(
                        conn,
                        logging.WARNING,
                        "http %d from %s: malformed request: %s",
                        status,
                        conn.client,
                        reason,
                    )
                    await conn.respond(status, f"{reason}\n".encode(), close=True)
                    return True
                if head is None:
                    return False
            if head is None:
                if not conn.started:
                    log.debug("idle connection from %s closed", conn.client)
                    return False
                self._refused(
                    conn,
                    logging.WARNING,
                    "http 408 from %s: request head incomplete after %.0f s",
                    conn.client,
                    _http.HEAD_TIMEOUT,
                )
                await conn.respond(408, b"request head too slow\n", close=True)
                return True
            if not routed and self.handoff is not None:
                # each request of a call (keep-alive connections carry several) goes to the
                # worker that owns its call; a handed connection's first one is already there
                moved = await self.handoff.route(conn, head)
                if moved.conn is None:
                    return False  # the owner serves it now; our copy of the socket closes
                if moved.conn is not conn:
                    return await self._serve_http(moved.conn, scope)
            if is_websocket_upgrade(head):
                upgrade = await self.streams.check_upgrade(conn, head)
                if upgrade is None:
                    return True  # refused with an HTTP error
                return conn, upgrade  # (a call may last an hour: this frame and its head go)
            if not await self._serve_request(conn, head, scope) or not conn.next_cycle():
                return True
            routed = False

    async def _serve_request(
        self, conn: HttpConnection, head: h11.Request, scope: trio.CancelScope
    ) -> bool:
        """Answer one plain HTTP request; whether the connection may serve another."""
        method = head.method.decode("ascii", "replace").upper()
        target = head.target.decode("ascii", "replace")
        path, _, query = target.partition("?")
        context = CALL_CONTEXT.set(None)  # a webhook handler binds its call for this request
        try:
            return await self._respond(conn, head, method, target, path, query, scope)
        finally:
            CALL_CONTEXT.reset(context)

    async def _respond(
        self,
        conn: HttpConnection,
        head: h11.Request,
        method: str,
        target: str,
        path: str,
        query: str,
        scope: trio.CancelScope,
    ) -> bool:
        try:
            body = b""
            with trio.move_on_after(_http.BODY_TIMEOUT) as body_scope:
                self.cap.waiting(scope)  # for the client: may be closed to make room
                try:
                    body = await conn.read_body(head)
                finally:
                    self.cap.stop_waiting(scope)
            if body_scope.cancelled_caught:
                raise HttpError(408, f"body incomplete after {_http.BODY_TIMEOUT:.0f} s")
            kind, flow = self.routes.route(method, path)
            request = Request(
                method=method,
                target=target,
                path=path,
                query=query,
                headers=header_dict(head.headers),
                body=body,
                client=conn.client,
            )
            if kind == "health":
                status, payload, content_type = self.health.respond(path)
            elif kind == "metrics":
                payload, content_type = render_metrics()
                status = 200
            elif kind == "page":
                payload, content_type = self.routes.pages[path]
                status = 200
            elif kind == "answer":
                assert flow is not None
                if self.drain.draining:
                    status, payload, content_type = self.webhooks.drain_answer(
                        request, flow, self.drain_answer
                    )
                else:
                    status, payload, content_type = self.webhooks.answer(request, flow)
            elif kind == "status":
                assert flow is not None
                status, payload, content_type = self.webhooks.status(request, flow)
            elif kind == "machine":
                assert flow is not None
                status, payload, content_type = self.webhooks.machine(request, flow)
            else:  # a stream path without an upgrade
                raise HttpError(
                    426, "this path takes a WebSocket upgrade", [("upgrade", "websocket")]
                )
        except HttpError as exc:
            # The reason quotes outside values escaped; the cut bounds the whole line.
            reason = exc.reason if len(exc.reason) <= 1000 else escape(exc.reason, 1000)
            self._refused(
                conn,
                logging.INFO if exc.status == 404 else logging.WARNING,
                "http %d %s %s from %s: %s",
                exc.status,
                escape(method, 20),
                escape(path),
                conn.client,
                reason,
            )
            close = not conn.request_complete
            await conn.respond(
                exc.status,
                f"{reason}\n".encode(),
                headers=[*exc.headers, *self._worker_header],
                close=close,
            )
            return not close
        except h11.RemoteProtocolError as exc:
            reason = escape(exc)
            self._refused(
                conn,
                logging.WARNING,
                "http %d %s %s from %s: malformed request: %s",
                exc.error_status_hint,
                escape(method, 20),
                escape(path),
                conn.client,
                reason,
            )
            await conn.respond(exc.error_status_hint, f"{reason}\n".encode(), close=True)
            return False
        except trio.BrokenResourceError:
            raise
        except Exception:
            log.exception(
                "http 500 %s %s from %s: handler failed",
                escape(method, 20),
                escape(path),
                conn.client,
            )
            await conn.respond(500, b"internal error\n", close=True)
            return False
        await conn.respond(status, payload, content_type=content_type, headers=self._worker_header)
        return True
