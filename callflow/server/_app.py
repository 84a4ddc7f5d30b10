"""``serve_flows``: one port for the answer webhook, the stream WebSocket and status callbacks.

The routes are in :mod:`callflow.server._routes`. One port serves HTTP and WebSocket alike, so
one tunnel (ngrok) or one load-balancer rule serves everything: h11 reads each request head
(:mod:`~callflow.server._front`), plain requests go to the health check
(:mod:`~callflow.server._health`) or Plivo's webhooks (:mod:`~callflow.server._webhooks`), and
an upgrade on a stream path whose token checks out is completed and run as a call by
:mod:`~callflow.server._streams`. This module binds the listener, runs the accept loop and
the shutdown.

Exception policy: every connection runs in its own task; anything one connection or call
raises (other than cancellation) is logged with the call id where known and goes no
further, so one call's crash never touches the server or another call.

Logs go to the ``callflow.server`` logger; lines about a call start with ``call=<CallUUID>``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs
import trio

from callflow._flow import Flow
from callflow.observe import watch_gc
from callflow.runtime import LiveCalls, PlivoRest, RuntimeConfig
from callflow.server._drain import HARD_DEADLINE, Drain, DrainAnswer
from callflow.server._front import Front
from callflow.server._handoff import Handoff
from callflow.server._health import HEALTH_PATH, Health
from callflow.server._keepalive import DEFAULT_KEEPALIVE, Keepalive, Pinger
from callflow.server._routes import Routes
from callflow.server._streams import CLOSE_TIMEOUT, HANDSHAKE_TIMEOUT, MAX_MESSAGE_SIZE, Streams
from callflow.server._token import DEFAULT_TTL
from callflow.server._watchdog import DEFAULT_STALL_THRESHOLD, LoopWatchdog
from callflow.server._webhooks import Webhooks, check_public_url
from callflow.server._wsfast import ReadLoop

__all__ = [
    "CLOSE_TIMEOUT",
    "DEFAULT_DRAIN_TIMEOUT",
    "HANDSHAKE_TIMEOUT",
    "HARD_DEADLINE",
    "HEALTH_PATH",
    "MAX_MESSAGE_SIZE",
    "Drain",
    "DrainAnswer",
    "ServerInfo",
    "check_public_url",
    "serve_flows",
]

log = logging.getLogger("callflow.server")

DEFAULT_DRAIN_TIMEOUT = 10.0
"""Seconds live calls get to finish when the server is cancelled."""


@attrs.frozen
class ServerInfo:
    """Where a running :func:`serve_flows` listens (what ``task_status.started`` reports).

    Attributes:
        host: the address bound, e.g. ``127.0.0.1``.
        port: the TCP port bound (the real one when 0 was asked for).
        public_url: the ``--public-url`` base, or ``None`` (then derived per request).
    """

    host: str
    port: int
    public_url: str | None = None
    replace_flows: Callable[[Sequence[Flow]], None] | None = attrs.field(
        default=None, eq=False, repr=False
    )
    """Route new calls to other flows from now on (what ``callflow serve --reload`` uses);
    live calls finish on theirs. Raises ``ValueError`` for flows that cannot be served
    together (two on one path)."""

    @property
    def url(self) -> str:
        """``http://host:port`` of the local listener."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class _Server:
    """The parts behind one :func:`serve_flows` call, wired together."""

    def __init__(
        self,
        flows: Sequence[Flow],
        *,
        public_url: str | None,
        auth_token: str | None,
        token_ttl: float,
        live_calls: LiveCalls,
        rest: PlivoRest | None = None,
        drain: Drain,
        drain_answer: DrainAnswer,
        worker: int = 0,
        workers: int = 1,
        handoff_folder: Path | None = None,
        pages: Mapping[str, tuple[bytes, str]] | None = None,
        config: RuntimeConfig | None = None,
    ) -> None:
        self.drain = drain
        self.routes = Routes(flows, pages)
        self.handoff = (
            Handoff(worker, workers, handoff_folder, self.routes)
            if workers > 1 and handoff_folder is not None
            else None
        )
        self.flows = self.routes.flows
        self.webhooks = Webhooks(
            public_url=public_url,
            auth_token=auth_token,
            token_ttl=token_ttl,
            live_calls=live_calls,
        )
        self.streams = Streams(
            self.routes, auth_token=auth_token, live_calls=live_calls, rest=rest, config=config
        )
        self.front = Front(
            self.routes,
            health=Health(self.flows, live_calls, drain, worker, self.handoff),
            webhooks=self.webhooks,
            streams=self.streams,
            drain=drain,
            drain_answer=drain_answer,
            worker=worker,
            handoff=self.handoff,
        )

    def replace_flows(self, flows: Sequence[Flow]) -> None:
        """New requests go to ``flows`` (see :meth:`Routes.replace`)."""
        self.routes.replace(flows)
        self.front.health.flows[:] = flows


async def serve_flows(
    flows: Sequence[Flow],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    public_url: str | None = None,
    auth_token: str | None = None,
    token_ttl: float = DEFAULT_TTL,
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
    drain: Drain | None = None,
    drain_answer: DrainAnswer | None = None,
    live_calls: LiveCalls | None = None,
    rest: PlivoRest | None = None,
    loop_stall_threshold: float | None = DEFAULT_STALL_THRESHOLD,
    keepalive: Keepalive | None = DEFAULT_KEEPALIVE,
    pages: Mapping[str, tuple[bytes, str]] | None = None,
    config: RuntimeConfig | None = None,
    task_status: trio.TaskStatus[ServerInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``flows`` on one HTTP + WebSocket port until drained.

    Use ``info = await nursery.start(serve_flows, flows, port=0)``: ``info`` is a
    :class:`ServerInfo` with the bound port. Routes are in :mod:`callflow.server._routes`.

    Args:
        flows: the flows to serve (e.g. from :func:`callflow.load_flows`); paths must differ.
        host: the address to bind.
        port: the TCP port; 0 picks a free one.
        public_url: ``https://host[:port]`` as Plivo reaches this server (an ngrok URL…).
            It builds the stream and status URLs written into the answer XML and the URL
            that Plivo signatures are checked against. Without it, each request's
            ``X-Forwarded-Proto`` (default ``http``) and ``X-Forwarded-Host`` / ``Host``
            headers say.
        auth_token: the Plivo auth token (the CLI reads ``PLIVO_AUTH_TOKEN``). With it, every
            answer and status request must carry a valid ``X-Plivo-Signature-V3``
            (PROTOCOL.md §7; else 403) and every WebSocket upgrade a valid signed stream token
            (else the handshake is refused with HTTP 403). Without it (development), nothing
            is checked and a warning is logged at startup.
        token_ttl: seconds a stream token in the answer XML stays valid.
        drain_timeout: seconds live calls get to end on their own once the drain starts.
        drain: the drain control (default: a new one): ``drain.start()`` starts the drain;
            afterwards it tells whether every call ended on its own (:class:`Drain`).
        drain_answer: what new answer webhooks get while draining (default HTTP 503).
        live_calls: the registry of running calls (default: a new one). Status callbacks
            and machine-detection callbacks reach calls through it.
        rest: Plivo REST credentials (``PlivoRest.from_env()`` in the CLI): with them,
            ``hangup()`` and every end of a flow hang the call up over REST, and
            ``transfer()`` works.
        loop_stall_threshold: seconds the event loop may be held (by a flow that blocks)
            before a :class:`~callflow.server._watchdog.LoopWatchdog` thread logs it once
            with the stack and counts it in ``callflow_event_loop_stalls_total``; ``None``
            runs no watchdog.
        keepalive: WebSocket pings on every call's socket (:class:`Keepalive`: every
            ``ping_interval``, 10 s, as Plivo asks servers to ping); a socket whose pong does
            not come within ``pong_timeout`` (10 s) is given up as lost (an abnormal close,
            1006, as a reset is), so a peer that falls silent is noticed within their sum.
            ``None`` sends no pings.
        pages: fixed pages served on ``GET`` (path → body bytes, content type), such as
            the dev phone of ``callflow serve --dev`` (:func:`callflow.dev.dev_pages`);
            ``None`` (production) serves none.
        config: every call's :class:`~callflow.runtime.RuntimeConfig` (default: the
            defaults), e.g. ``RuntimeConfig(reconnect_grace_s=…)``: how long a call whose
            socket was lost waits for Plivo's reconnect (docs/reconnect.md).

    Drain (the timeline is in :mod:`callflow.server._drain`): ``drain.start()`` or
    cancelling this task starts it. Readiness goes false at once and new answer webhooks
    get ``drain_answer``, but the listener stays open for status callbacks and stream
    (re)connections of live calls. Calls get ``drain_timeout`` seconds to end on their own;
    then they are ended with ``CallEnded("drained")``, cancelled, and finally their sockets
    cut, all within :data:`HARD_DEADLINE` seconds. Then this returns (re-raising the
    cancellation if it was cancelled). Only a flow that ignores cancellation (sleeping in a
    shielded scope) can keep it from returning; ``callflow serve`` exits the process at the
    hard deadline regardless.

    Raises:
        ValueError: no flows, two routes on one path (a flow on ``/healthz``…), or a
            malformed ``public_url``.
        OSError: the address cannot be bound.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    await serve_listeners(
        flows,
        listeners,
        public_url=public_url,
        auth_token=auth_token,
        token_ttl=token_ttl,
        drain_timeout=drain_timeout,
        drain=drain,
        drain_answer=drain_answer,
        live_calls=live_calls,
        rest=rest,
        loop_stall_threshold=loop_stall_threshold,
        keepalive=keepalive,
        pages=pages,
        config=config,
        task_status=task_status,
    )


async def serve_listeners(
    flows: Sequence[Flow],
    listeners: Sequence[trio.SocketListener],
    *,
    public_url: str | None = None,
    auth_token: str | None = None,
    token_ttl: float = DEFAULT_TTL,
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
    drain: Drain | None = None,
    drain_answer: DrainAnswer | None = None,
    live_calls: LiveCalls | None = None,
    rest: PlivoRest | None = None,
    loop_stall_threshold: float | None = DEFAULT_STALL_THRESHOLD,
    keepalive: Keepalive | None = DEFAULT_KEEPALIVE,
    worker: int = 0,
    workers: int = 1,
    handoff_folder: Path | None = None,
    pages: Mapping[str, tuple[bytes, str]] | None = None,
    config: RuntimeConfig | None = None,
    task_status: trio.TaskStatus[ServerInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    """:func:`serve_flows` on listeners already bound (closed when this returns).

    ``worker`` is this process's index among ``workers`` (the health JSON and the
    ``X-Callflow-Worker`` header report it); with several, connections of a call another
    worker owns are handed to it through the Unix sockets in ``handoff_folder``
    (:mod:`callflow.server._handoff`)."""
    drain = drain if drain is not None else Drain()
    watch_gc()  # callflow_gc_pause_seconds
    server: _Server | None = None
    try:
        server = _Server(
            flows,
            pages=pages,
            public_url=public_url,
            auth_token=auth_token,
            token_ttl=token_ttl,
            live_calls=live_calls if live_calls is not None else LiveCalls(),
            rest=rest,
            drain=drain,
            drain_answer=drain_answer if drain_answer is not None else DrainAnswer(),
            worker=worker,
            workers=workers,
            handoff_folder=handoff_folder,
            config=config,
        )
        server.streams.keepalive = keepalive
        bound = listeners[0].socket.getsockname()
        info = ServerInfo(
            host=str(bound[0]),
            port=int(bound[1]),
            public_url=server.webhooks.public_url,
            replace_flows=server.replace_flows,
        )
        server.webhooks.local_authority = info.url.removeprefix("http://")
        if server.webhooks.auth_token is None:
            log.warning(
                "PLIVO_AUTH_TOKEN is not set: Plivo signatures and stream tokens are NOT "
                "checked (development mode)"
            )
        async with trio.open_nursery() as guard:
            guard.start_soon(_drain_on_cancel, drain)
            # The server runs shielded: cancellation starts the drain (above) instead of
            # stopping it, so the listener stays open for the live calls' callbacks.
            with trio.CancelScope(shield=True):
                await _run(
                    server, listeners, info, drain_timeout, loop_stall_threshold, task_status
                )
            guard.cancel_scope.cancel()
    finally:
        if server is not None and server.handoff is not None:
            server.handoff.close()
        with trio.CancelScope(shield=True):
            for listener in listeners:
                await listener.aclose()


async def _drain_on_cancel(drain: Drain) -> None:
    try:
        await trio.sleep_forever()
    finally:
        drain.start()


async def _run(
    server: _Server,
    listeners: Sequence[trio.SocketListener],
    info: ServerInfo,
    drain_timeout: float,
    loop_stall_threshold: float | None,
    task_status: trio.TaskStatus[ServerInfo],
) -> None:
    drain = server.drain
    async with trio.open_nursery() as nursery:
        accept_scope = trio.CancelScope()

        async def accept() -> None:
            with accept_scope:
                await trio.serve_listeners(
                    functools.partial(server.front.handle_handed, routed=False),
                    list(listeners),
                    handler_nursery=nursery,
                )

        nursery.start_soon(accept)
        if loop_stall_threshold is not None:
            await nursery.start(LoopWatchdog(threshold=loop_stall_threshold).run)
        if server.handoff is not None:
            nursery.start_soon(server.handoff.receive, server.front.handle_handed, nursery)
        if ReadLoop.available():  # else (not Linux) each call reads its own socket
            server.streams.read_loop = ReadLoop()
            nursery.start_soon(server.streams.read_loop.run)
        await nursery.start(server.streams.timeouts.run)
        if server.streams.keepalive is not None:
            server.streams.pinger = Pinger(server.streams.keepalive)
            nursery.start_soon(server.streams.pinger.run)
        log.info("listening on %s (%d flows)", info.url, len(server.flows))
        task_status.started(info)
        await drain.wait_started()
        log.info(
            "draining: readiness false, new answers get %s; %d live call(s) get up to %.0f s",
            "HTTP 503" if server.front.drain_answer.kind == "unavailable" else "the drain XML",
            len(server.streams),
            drain_timeout,
        )
        await server.streams.drain(drain_timeout, drain)
        accept_scope.cancel()  # serve_listeners closes the listeners as it ends
        server.front.close_http()
        nursery.cancel_scope.cancel()
        log.info(
            "server on %s stopped: %d call(s) at the drain, %d ended by its deadline, %d cut",
            info.url,
            drain.calls_at_start,
            drain.calls_ended_by_server,
            drain.calls_cut,
        )
    drain._finish()
