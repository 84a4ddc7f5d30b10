"""The route table of :func:`~callflow.server.serve_flows`, and small helpers every front
module shares (header dicts, call labels for log lines, the peer's address).

Routes, for each flow (PROTOCOL.md §1)::

    GET|POST  <flow.path>          answer webhook: Plivo's form params in, <Stream> XML out
    WS        <flow.stream_path>   the stream WebSocket (Plivo is the client); the flow runs here
    GET|POST  <flow.status_path>   stream status callbacks (PROTOCOL.md §6)
    GET|POST  <flow.machine_path>  machine detection callbacks (``Machine=true``, seed 004)
    GET       /readyz              readiness: 200, or 503 while draining (callflow.server._health)
    GET       /livez               liveness: 200 while the process serves
    GET       /healthz             an alias of /readyz
    GET       /metrics             Prometheus text exposition (docs/operations.md)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import h11
import trio

from callflow._flow import Flow
from callflow.observe import escape
from callflow.server._health import HEALTH_PATHS
from callflow.server._http import HttpError

METRICS_PATH = "/metrics"

CALL_QUERY_KEY = "CallUUID"
"""The query parameter that names the call in every URL callflow writes for it (stream,
status callback), so a load balancer hashing on it (HAProxy ``balance url_param CallUUID``)
and ``--workers`` send all of a call's connections to the process that runs its flow."""

_CALL_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")

RouteKind = Literal["health", "metrics", "page", "answer", "stream", "status", "machine"]


class Routes:
    """Path → (kind, flow) for every flow's four paths and the health paths.

    Raises:
        ValueError: no flows, or two routes on one path (a flow on ``/healthz``…).
    """

    def __init__(
        self, flows: Sequence[Flow], pages: Mapping[str, tuple[bytes, str]] | None = None
    ) -> None:
        self.flows: list[Flow] = []
        self.table: dict[str, tuple[RouteKind, Flow | None]] = {}
        self.pages = dict(pages or {})
        """Fixed pages (path → body, content type) served on GET, such as the dev phone."""
        self.replace(flows)

    def replace(self, flows: Sequence[Flow]) -> None:
        """Route new requests to ``flows`` from now on (``callflow serve --reload``); a call
        already running keeps the flow it started with. Checked whole before anything
        changes.

        Raises:
            ValueError: as the constructor.
        """
        if not flows:
            raise ValueError("serve_flows needs at least one flow")
        table: dict[str, tuple[RouteKind, Flow | None]] = {
            path: ("health", None) for path in HEALTH_PATHS
        }
        table[METRICS_PATH] = ("metrics", None)
        for page in self.pages:
            table[page] = ("page", None)
        for f in flows:
            paths: tuple[tuple[RouteKind, str], ...] = (
                ("answer", f.path),
                ("stream", f.stream_path),
                ("status", f.status_path),
                ("machine", f.machine_path),
            )
            for kind, path in paths:
                if path in table:
                    other = table[path][1]
                    owner = other.name if other is not None else "the health check"
                    raise ValueError(f"path {path!r} of flow {f.name} is taken by {owner}")
                table[path] = (kind, f)
        self.table = table
        self.flows[:] = flows  # in place: the health check lists the same list

    def get(self, path: str) -> tuple[RouteKind, Flow | None] | None:
        """The route at ``path``, or ``None``."""
        return self.table.get(path)

    def route(self, method: str, path: str) -> tuple[RouteKind, Flow | None]:
        """The route a plain HTTP request goes to.

        Raises:
            HttpError: 404 for an unknown path, 405 for a method the route does not take.
        """
        route = self.table.get(path)
        if route is None:
            raise HttpError(404, "no flow or route at this path")
        kind = route[0]
        allowed = ("GET",) if kind in ("health", "metrics", "page", "stream") else ("GET", "POST")
        if method not in allowed:
            raise HttpError(
                405, f"{escape(method, 20)} not allowed here", [("allow", ", ".join(allowed))]
            )
        return route


def call_query(call_uuid: str | None) -> str:
    """``CallUUID=<id>`` for a URL's query, or ``""`` when there is no id or it is not a
    plain id (at most 64 letters, digits, ``-``, ``_``, ``.``: Plivo's are UUIDs), so an
    outside value never shapes the URL."""
    if call_uuid is None or not _CALL_ID_RE.match(call_uuid):
        return ""
    return f"{CALL_QUERY_KEY}={call_uuid}"


def peer_host(client: str) -> str:
    """The host of a ``host:port`` peer (the key of per-peer rate limits)."""
    return client.rpartition(":")[0] or client


def peer(stream: trio.abc.Stream) -> str:
    """``host:port`` of a socket stream's peer, ``?`` when unknown."""
    if isinstance(stream, trio.SocketStream):
        try:
            host, port, *_ = stream.socket.getpeername()
        except OSError:
            return "?"
        return f"{host}:{port}"
    return "?"


def is_websocket_upgrade(head: h11.Request) -> bool:
    """Whether ``head`` is a ``GET`` asking for ``Upgrade: websocket``."""
    if head.method != b"GET":
        return False
    for name, value in head.headers:
        if name == b"upgrade" and value.strip().lower() == b"websocket":
            return True
    return False


def header_dict(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Header names lower-cased, values latin-1; a repeated header joined with ``", "``."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("ascii", "replace").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers
