"""``serve_flows``: one port for the answer webhook, the stream WebSocket and status callbacks.

Routes, for each flow (PROTOCOL.md §1)::

    GET|POST  <flow.path>          answer webhook: Plivo's form params in, <Stream> XML out
    WS        <flow.stream_path>   the stream WebSocket (Plivo is the client); the flow runs here
    GET|POST  <flow.status_path>   stream status callbacks (PROTOCOL.md §6)
    GET|POST  <flow.machine_path>  machine detection callbacks (``Machine=true``, seed 004)
    GET       /healthz             {"status": "ok", "calls": N, "flows": [paths]}

One port serves HTTP and WebSocket alike, so one tunnel (ngrok) or one load-balancer rule
serves everything: h11 reads each request head, and an upgrade on a stream path whose token
checks out is completed by :class:`~callflow.server._wsfast.FastWebSocketTransport` (websockets'
sans-IO protocol) from the bytes already read.

Exception policy: every connection runs in its own task; anything one connection or call
raises (other than cancellation) is logged with the call id where known and goes no
further, so one call's crash never touches the server or another call.

Logs go to the ``callflow.server`` logger; lines about a call start with ``call=<CallUUID>``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import parse_qs, urlsplit

import attrs
import h11
import trio

from callflow._answer import MAX_STREAM_URL, answer_xml
from callflow._flow import Flow
from callflow.runtime import LiveCalls, PlivoRest, run_call
from callflow.server import _http
from callflow.server._http import HttpConnection, HttpError, Request
from callflow.server._signature import NONCE_HEADER, SIGNATURE_HEADER, validate_signature_v3
from callflow.server._token import (
    DEFAULT_TTL,
    TOKEN_QUERY_KEY,
    StreamToken,
    StreamTokenError,
    essential_params,
    make_stream_token,
    verify_stream_token,
)
from callflow.server._wsfast import FastWebSocketTransport, HandshakeFailed, ReadLoop

log = logging.getLogger("callflow.server")

MAX_MESSAGE_SIZE = 65536
"""Largest WebSocket message accepted, in characters (Plivo's 64 KB limit, PROTOCOL.md §1).
A bigger message closes that call's socket with code 1009."""

HEALTH_PATH = "/healthz"

DEFAULT_DRAIN_TIMEOUT = 10.0
"""Seconds live calls get to finish when the server is cancelled."""

HANDSHAKE_TIMEOUT = 10.0
"""Seconds for the WebSocket opening handshake once the upgrade request has been read."""

CLOSE_TIMEOUT = 5.0
"""Seconds a call's socket waits for the peer's close frame."""


_HOST_RE = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


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

    @property
    def url(self) -> str:
        """``http://host:port`` of the local listener."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def check_public_url(url: str) -> str:
    """``url`` as a public base: ``http(s)://host[:port]`` without a trailing slash.

    Raises:
        ValueError: another scheme, or a path, query or fragment.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"public URL must be http(s)://host[:port], not {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"public URL must have no path, query or fragment: {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def _call(call_uuid: str | None) -> str:
    return f"call={call_uuid or '-'}"


def _peer(stream: trio.abc.Stream) -> str:
    if isinstance(stream, trio.SocketStream):
        try:
            host, port, *_ = stream.socket.getpeername()
        except OSError:
            return "?"
        return f"{host}:{port}"
    return "?"


class _Server:
    """The routes and connection handling behind :func:`serve_flows` (one per call of it)."""

    def __init__(
        self,
        flows: Sequence[Flow],
        *,
        public_url: str | None,
        auth_token: str | None,
        token_ttl: float,
        live_calls: LiveCalls,
        rest: PlivoRest | None = None,
    ) -> None:
        if not flows:
            raise ValueError("serve_flows needs at least one flow")
        self.flows = list(flows)
        self.public_url = check_public_url(public_url) if public_url else None
        self.auth_token = auth_token or None
        self.token_ttl = token_ttl
        self.live_calls = live_calls
        self.rest = rest
        self.local_authority = "127.0.0.1"
        self.routes: dict[str, tuple[str, Flow | None]] = {HEALTH_PATH: ("health", None)}
        for f in self.flows:
            for kind, path in (
                ("answer", f.path),
                ("stream", f.stream_path),
                ("status", f.status_path),
                ("machine", f.machine_path),
            ):
                if path in self.routes:
                    other = self.routes[path][1]
                    owner = other.name if other is not None else "the health check"
                    raise ValueError(f"path {path!r} of flow {f.name} is taken by {owner}")
                self.routes[path] = (kind, f)
        self.read_loop: ReadLoop | None = None
        """Reads every parked call's socket (Linux); set by :func:`serve_flows`."""
        self._connections: set[trio.CancelScope] = set()
        self._call_connections: set[trio.CancelScope] = set()
        self._calls: dict[trio.CancelScope, str | None] = {}
        self._calls_changed = trio.Event()

    # -- connections --------------------------------------------------------------------

    async def handle_connection(self, stream: trio.SocketStream) -> None:
        """Serve one TCP connection: HTTP requests, or one WebSocket call after an upgrade."""
        client = _peer(stream)
        with trio.CancelScope() as scope:
            self._connections.add(scope)
            conn = HttpConnection(stream, client)
            try:
                if await self._serve_http(conn, scope):
                    await conn.linger()
            except* trio.BrokenResourceError:
                log.debug("connection from %s broken by the client", client)
            except* Exception:
                log.exception("connection from %s failed; closed", client)
            finally:
                self._connections.discard(scope)
                self._call_connections.discard(scope)

    async def _serve_http(self, conn: HttpConnection, scope: trio.CancelScope) -> bool:
        """Serve requests until the connection ends. True when it should linger before it is
        closed (an error response may have left request bytes unread); False when the client
        has gone, or the connection went to a WebSocket."""
        while True:
            head: h11.Request | None = None
            with trio.move_on_after(_http.HEAD_TIMEOUT):
                try:
                    head = await conn.read_head()
                except h11.RemoteProtocolError as exc:
                    status = exc.error_status_hint
                    log.warning("http %d from %s: malformed request: %s", status, conn.client, exc)
                    await conn.respond(status, f"{exc}\n".encode(), close=True)
                    return True
                if head is None:
                    return False
            if head is None:
                if not conn.started:
                    log.debug("idle connection from %s closed", conn.client)
                    return False
                log.warning(
                    "http 408 from %s: request head incomplete after %.0f s",
                    conn.client,
                    _http.HEAD_TIMEOUT,
                )
                await conn.respond(408, b"request head too slow\n", close=True)
                return True
            if _is_websocket_upgrade(head):
                return not await self._serve_upgrade(conn, head, scope)
            if not await self._serve_request(conn, head) or not conn.next_cycle():
                return True

    async def _serve_request(self, conn: HttpConnection, head: h11.Request) -> bool:
        """Answer one plain HTTP request; whether the connection may serve another."""
        method = head.method.decode("ascii", "replace").upper()
        target = head.target.decode("ascii", "replace")
        path, _, query = target.partition("?")
        try:
            body = b""
            with trio.move_on_after(_http.BODY_TIMEOUT) as body_scope:
                body = await conn.read_body(head)
            if body_scope.cancelled_caught:
                raise HttpError(408, f"body incomplete after {_http.BODY_TIMEOUT:.0f} s")
            kind, flow = self._route(method, path)
            request = Request(
                method=method,
                target=target,
                path=path,
                query=query,
                headers=_headers(head.headers),
                body=body,
                client=conn.client,
            )
            if kind == "health":
                status, payload, content_type = self._health()
            elif kind == "answer":
                assert flow is not None
                status, payload, content_type = self._answer(request, flow)
            elif kind == "status":
                assert flow is not None
                status, payload, content_type = self._status(request, flow)
            elif kind == "machine":
                assert flow is not None
                status, payload, content_type = self._machine(request, flow)
            else:  # a stream path without an upgrade
                raise HttpError(
                    426, "this path takes a WebSocket upgrade", [("upgrade", "websocket")]
                )
        except HttpError as exc:
            log.log(
                logging.INFO if exc.status == 404 else logging.WARNING,
                "http %d %s %s from %s: %s",
                exc.status,
                method,
                path,
                conn.client,
                exc.reason,
            )
            close = not conn.request_complete
            await conn.respond(
                exc.status, f"{exc.reason}\n".encode(), headers=exc.headers, close=close
            )
            return not close
        except h11.RemoteProtocolError as exc:
            log.warning(
                "http %d %s %s from %s: malformed request: %s",
                exc.error_status_hint,
                method,
                path,
                conn.client,
                exc,
            )
            await conn.respond(exc.error_status_hint, f"{exc}\n".encode(), close=True)
            return False
        except trio.BrokenResourceError:
            raise
        except Exception:
            log.exception("http 500 %s %s from %s: handler failed", method, path, conn.client)
            await conn.respond(500, b"internal error\n", close=True)
            return False
        await conn.respond(status, payload, content_type=content_type)
        return True

    def _route(self, method: str, path: str) -> tuple[str, Flow | None]:
        route = self.routes.get(path)
        if route is None:
            raise HttpError(404, "no flow or route at this path")
        kind = route[0]
        allowed = ("GET",) if kind in ("health", "stream") else ("GET", "POST")
        if method not in allowed:
            raise HttpError(405, f"{method} not allowed here", [("allow", ", ".join(allowed))])
        return route

    # -- handlers -------------------------------------------------------------------------

    def _health(self) -> tuple[int, bytes, str]:
        body = {
            "status": "ok",
            "calls": len(self.live_calls),
            "flows": [f.path for f in self.flows],
        }
        return 200, json.dumps(body).encode(), "application/json"

    def _params(self, request: Request) -> tuple[list[tuple[str, str]], dict[str, str]]:
        """(the params Plivo signed, all params for the flow: query then form, form winning)."""
        query = request.query_params()
        form = request.form_params() if request.method == "POST" else []
        return form, {**dict(query), **dict(form)}

    def _check_signature(
        self, request: Request, signed: list[tuple[str, str]], params: Mapping[str, str]
    ) -> None:
        if self.auth_token is None:
            return
        call = _call(params.get("CallUUID"))
        header = request.headers.get(SIGNATURE_HEADER.lower())
        nonce = request.headers.get(NONCE_HEADER.lower())
        if header is None or nonce is None:
            missing = SIGNATURE_HEADER if header is None else NONCE_HEADER
            raise HttpError(403, f"{call} header {missing} missing")
        url = self.public_base(request) + request.target
        if not validate_signature_v3(
            self.auth_token,
            method=request.method,
            url=url,
            params=signed,
            nonce=nonce,
            header=header,
        ):
            raise HttpError(
                403,
                f"{call} field {SIGNATURE_HEADER}: signature does not match {request.method} "
                f"{url} (is --public-url the URL Plivo calls?)",
            )

    def _answer(self, request: Request, flow: Flow) -> tuple[int, bytes, str]:
        signed, params = self._params(request)
        self._check_signature(request, signed, params)
        call_uuid = params.get("CallUUID")
        if call_uuid is None:
            log.warning(
                "%s answer %s: field CallUUID missing from the answer params",
                _call(None),
                flow.path,
            )
        base = self.public_base(request)
        stream_url = self._stream_url(base, flow, params)
        xml = answer_xml(flow, stream_url=stream_url, status_callback_url=base + flow.status_path)
        log.info(
            "%s answer %s %s: %s call from %s to %s; flow %s",
            _call(call_uuid),
            request.method,
            flow.path,
            params.get("Direction", "?"),
            params.get("From", "?"),
            params.get("To", "?"),
            flow.name,
        )
        return 200, xml, "application/xml"

    def _stream_url(self, base: str, flow: Flow, params: Mapping[str, str]) -> str:
        ws_base = (
            "wss" + base[len("https") :]
            if base.startswith("https:")
            else ("ws" + base[len("http") :])
        )

        def build(carried: Mapping[str, str]) -> str:
            token = make_stream_token(
                flow.stream_path, carried, auth_token=self.auth_token, ttl=self.token_ttl
            )
            return f"{ws_base}{flow.stream_path}?{TOKEN_QUERY_KEY}={token}"

        url = build(params)
        if len(url) <= MAX_STREAM_URL:
            return url
        kept = essential_params(params)
        url = build(kept)
        dropped = sorted(set(params) - set(kept))
        log.warning(
            "%s answer %s: the stream URL would exceed Plivo's %d chars with every answer "
            "param; the token carries only %s (dropped: %s)",
            _call(params.get("CallUUID")),
            flow.path,
            MAX_STREAM_URL,
            ", ".join(kept),
            ", ".join(dropped),
        )
        if len(url) > MAX_STREAM_URL:
            raise HttpError(500, f"stream URL is {len(url)} chars even with essential params")
        return url

    def _status(self, request: Request, flow: Flow) -> tuple[int, bytes, str]:
        signed, params = self._params(request)
        self._check_signature(request, signed, params)
        call_uuid = params.get("CallUUID")
        if not call_uuid:
            raise HttpError(400, f"{_call(None)} status callback: field CallUUID missing")
        extra = "".join(
            f" {key}={params[key]}" for key in ("StatusReason", "Error") if params.get(key)
        )
        log.info(
            "%s status %s StreamID=%s%s (flow %s)",
            _call(call_uuid),
            params.get("Event", "?"),
            params.get("StreamID", "?"),
            extra,
            flow.path,
        )
        if not self.live_calls.deliver_status(call_uuid, params):
            log.debug("%s status %s: no live call here", _call(call_uuid), params.get("Event"))
        return 200, b"", "text/plain; charset=utf-8"

    def _machine(self, request: Request, flow: Flow) -> tuple[int, bytes, str]:
        """Plivo's machine-detection callback (``Machine=true``, seed ``004_…``), handed to
        the live flow of that call (``Call.wait_machine``)."""
        signed, params = self._params(request)
        self._check_signature(request, signed, params)
        call_uuid = params.get("CallUUID")
        if not call_uuid:
            raise HttpError(400, f"{_call(None)} machine detection: field CallUUID missing")
        log.info(
            "%s machine detection Machine=%s (flow %s)",
            _call(call_uuid),
            params.get("Machine", "?"),
            flow.path,
        )
        if not self.live_calls.deliver_machine(call_uuid, params):
            log.info("%s machine detection: no live call here", _call(call_uuid))
        return 200, b"", "text/plain; charset=utf-8"

    def public_base(self, request: Request) -> str:
        """The public ``scheme://host[:port]`` the request was sent to: ``--public-url``, else
        ``X-Forwarded-Proto`` (default ``http``) and ``X-Forwarded-Host`` or ``Host``.

        Raises:
            HttpError: 400 for a malformed ``Host``.
        """
        if self.public_url is not None:
            return self.public_url
        return _base_from_headers(request.headers, self.local_authority)

    # -- WebSocket ------------------------------------------------------------------------

    async def _serve_upgrade(
        self, conn: HttpConnection, head: h11.Request, scope: trio.CancelScope
    ) -> bool:
        """Refuse the upgrade with an HTTP error (False) or serve the call on it (True)."""
        target = head.target.decode("ascii", "replace")
        path, _, query = target.partition("?")
        route = self.routes.get(path)
        headers = _headers(head.headers)
        if route is None or route[0] != "stream" or route[1] is None:
            log.warning("ws 404 %s from %s: no stream at this path", path, conn.client)
            await conn.respond(404, b"no stream at this path\n", close=True)
            return False
        flow = route[1]
        if headers.get("sec-websocket-version") != "13" or not headers.get("sec-websocket-key"):
            log.warning("ws 400 %s from %s: not a WebSocket 13 handshake", path, conn.client)
            await conn.respond(
                400,
                b"expected a WebSocket version 13 handshake\n",
                close=True,
                headers=[("sec-websocket-version", "13")],
            )
            return False
        token = self._verify_token(query, path, conn)
        if isinstance(token, str):
            await conn.respond(403, f"stream token rejected: {token}\n".encode(), close=True)
            return False
        # A live call: the server's cancellation no longer reaches this connection; only the
        # drain deadline does, through the call's own scope (so the socket can still close
        # cleanly: its reader runs outside that scope).
        scope.shield = True
        self._call_connections.add(scope)
        call_scope = trio.CancelScope()
        self._calls[call_scope] = token.call_uuid
        try:
            await self._run_websocket(conn, flow, token, call_scope)
        finally:
            del self._calls[call_scope]
            self._calls_changed.set()
            self._calls_changed = trio.Event()
        return True

    def _verify_token(self, query: str, path: str, conn: HttpConnection) -> StreamToken | str:
        """The upgrade's verified token, or why it is refused (logged here)."""
        values = parse_qs(query).get(TOKEN_QUERY_KEY)
        try:
            return verify_stream_token(
                values[-1] if values else None,
                path=path,
                auth_token=self.auth_token,
                now=time.time(),
            )
        except StreamTokenError as exc:
            if self.auth_token is None and exc.reason == "missing":
                log.info(
                    "call=- ws %s from %s: no stream token (accepted: signatures are off)",
                    path,
                    conn.client,
                )
                return StreamToken(path=path, call_uuid=None, expires_at=0, params={}, signed=False)
            log.warning(
                "%s ws 403 %s from %s: stream token rejected: %s",
                _call(exc.call_uuid),
                path,
                conn.client,
                exc.reason,
            )
            return exc.reason

    async def _run_websocket(
        self, conn: HttpConnection, flow: Flow, token: StreamToken, call_scope: trio.CancelScope
    ) -> None:
        """Complete the WebSocket handshake on the bytes h11 already read, then run the call.

        The transport's close handshake runs shielded after ``call_scope``, so cancelling the
        call (the drain deadline) still closes the socket cleanly.
        """
        call = _call(token.call_uuid)
        transport: FastWebSocketTransport | None = None
        with trio.move_on_after(HANDSHAKE_TIMEOUT):
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
                log.warning("%s ws %s from %s: %s", call, flow.stream_path, conn.client, exc)
                return
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
            return
        log.info(
            "%s ws %s from %s: stream accepted for flow %s",
            call,
            flow.stream_path,
            conn.client,
            flow.name,
        )
        code, reason = 1000, "call ended"
        try:
            with call_scope:
                await run_call(
                    flow,
                    transport,
                    answer_params=dict(token.params),
                    live_calls=self.live_calls,
                    rest=self.rest,
                )
            if call_scope.cancelled_caught:
                log.warning(
                    "%s ws %s: ended by the server's drain deadline", call, flow.stream_path
                )
        except* Exception:
            log.exception("%s run_call for flow %s raised; call closed", call, flow.name)
            code, reason = 1011, "server error"
        finally:
            with trio.CancelScope(shield=True):
                await transport.aclose(code, reason)
        if transport.close_code == 1009:
            log.warning(
                "%s ws %s: message over %d bytes from Plivo; socket closed with 1009",
                call,
                flow.stream_path,
                MAX_MESSAGE_SIZE,
            )

    # -- shutdown -------------------------------------------------------------------------

    async def drain(self, grace: float) -> None:
        """Close HTTP connections and give live calls ``grace`` seconds, then cancel them.

        The caller has already stopped accepting connections."""
        for scope in list(self._connections - self._call_connections):
            scope.cancel()
        if self._calls:
            log.info("draining %d live call(s), up to %.0f s", len(self._calls), grace)
            with trio.move_on_after(grace):
                while self._calls:
                    await self._calls_changed.wait()
            for scope, call_uuid in list(self._calls.items()):
                log.warning(
                    "%s still live after %.0f s of drain; ending it", _call(call_uuid), grace
                )
                scope.cancel()


def _is_websocket_upgrade(head: h11.Request) -> bool:
    if head.method != b"GET":
        return False
    for name, value in head.headers:
        if name == b"upgrade" and value.strip().lower() == b"websocket":
            return True
    return False


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("ascii", "replace").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def _base_from_headers(headers: Mapping[str, str], fallback_authority: str) -> str:
    proto = headers.get("x-forwarded-proto", "http").split(",")[0].strip().lower()
    if proto not in ("http", "https"):
        proto = "http"
    host = headers.get("x-forwarded-host") or headers.get("host") or fallback_authority
    host = host.split(",")[0].strip()
    if not _HOST_RE.match(host):
        raise HttpError(400, f"field Host: malformed {host!r}")
    return f"{proto}://{host}"


async def serve_flows(
    flows: Sequence[Flow],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    public_url: str | None = None,
    auth_token: str | None = None,
    token_ttl: float = DEFAULT_TTL,
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
    live_calls: LiveCalls | None = None,
    rest: PlivoRest | None = None,
    task_status: trio.TaskStatus[ServerInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``flows`` on one HTTP + WebSocket port until cancelled.

    Use ``info = await nursery.start(serve_flows, flows, port=0)``: ``info`` is a
    :class:`ServerInfo` with the bound port. Routes are in the module docstring.

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
        drain_timeout: on cancellation, seconds live calls get to end on their own before
            they are cancelled.
        live_calls: the registry of running calls (default: a new one). Status callbacks
            and machine-detection callbacks reach calls through it.
        rest: Plivo REST credentials (``PlivoRest.from_env()`` in the CLI): with them,
            ``hangup()`` and every end of a flow hang the call up over REST, and
            ``transfer()`` works.

    Cancellation (graceful drain): the listener closes at once (new connections are
    refused) and HTTP connections are closed, but live calls are shielded: they get
    ``drain_timeout`` seconds to end on their own, then are cancelled (each closes its socket
    cleanly). Then this returns, re-raising the cancellation. A call in progress cannot
    receive status callbacks during the drain (there is no listener).

    Raises:
        ValueError: no flows, two routes on one path (a flow on ``/healthz``…), or a
            malformed ``public_url``.
        OSError: the address cannot be bound.
    """
    server = _Server(
        flows,
        public_url=public_url,
        auth_token=auth_token,
        token_ttl=token_ttl,
        live_calls=live_calls if live_calls is not None else LiveCalls(),
        rest=rest,
    )
    listeners = await trio.open_tcp_listeners(port, host=host)
    try:
        bound = listeners[0].socket.getsockname()
        info = ServerInfo(host=str(bound[0]), port=int(bound[1]), public_url=server.public_url)
        server.local_authority = info.url.removeprefix("http://")
        if server.auth_token is None:
            log.warning(
                "PLIVO_AUTH_TOKEN is not set: Plivo signatures and stream tokens are NOT "
                "checked (development mode)"
            )
        async with trio.open_nursery() as nursery:
            accept_scope = trio.CancelScope()

            async def accept() -> None:
                with accept_scope:
                    await trio.serve_listeners(
                        server.handle_connection, listeners, handler_nursery=nursery
                    )

            nursery.start_soon(accept)
            if ReadLoop.available():  # else (not Linux) each call reads its own socket
                server.read_loop = ReadLoop()
                nursery.start_soon(server.read_loop.run)
            log.info("listening on %s (%d flows)", info.url, len(server.flows))
            task_status.started(info)
            try:
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    accept_scope.cancel()  # serve_listeners closes the listeners as it ends
                    await server.drain(drain_timeout)
                    log.info("server on %s stopped", info.url)
    finally:
        with trio.CancelScope(shield=True):
            for listener in listeners:
                await listener.aclose()
