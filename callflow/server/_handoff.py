"""Handing a connection to the worker that owns its call (``callflow serve --workers N``).

Every worker listens on the same port (``SO_REUSEPORT``), so the kernel hands a connection
to any of them. A call's flow runs in one worker, its **owner**: ``crc32(CallUUID) % N``
(:func:`owner_of`), the same in every process. The answer webhook can be served anywhere
(it starts nothing); a call's stream upgrade (and every reconnect), its status callbacks and
its machine-detection callback must reach the owner. So the worker that accepted the
connection reads the request head, takes the call id from the query parameter ``CallUUID``
(every URL callflow writes carries it), else from the stream token, else (a callback with
neither, such as machine detection) from the form body, and when another worker owns the
call it passes the accepted socket and every byte already read to the owner over a Unix
datagram socket (``SCM_RIGHTS``, as ``socket.send_fds``/``recv_fds``). The owner serves the
connection as if it had accepted it, starting from those bytes.

If the owner cannot be reached (it died and is being restarted) the accepting worker serves
the request itself: a callback then finds no live call here (its flow died with the owner),
and a first stream connection runs its flow here.
"""

from __future__ import annotations

import array
import contextlib
import errno
import logging
import os
import socket
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl

import attrs
import h11
import trio

from callflow.observe import escape
from callflow.server import _http
from callflow.server._http import HttpConnection
from callflow.server._routes import CALL_QUERY_KEY, Routes
from callflow.server._token import TOKEN_QUERY_KEY, token_call

log = logging.getLogger("callflow.server")

MAX_HANDOFF_BYTES = 128 * 1024
"""Most bytes (already read from the connection) one hand-off carries; a request that has
read more is served where it landed."""

SEND_TIMEOUT = 1.0
"""Seconds a hand-off waits for room in the owner's queue before serving locally."""

_ROUTED_KINDS = ("stream", "status", "machine")


def owner_of(call_uuid: str, count: int) -> int:
    """The index (0 … ``count`` - 1) of the worker that runs the call ``call_uuid``."""
    return zlib.crc32(call_uuid.encode("utf-8", "surrogatepass")) % count


def socket_path(folder: Path, index: int) -> Path:
    """Where worker ``index`` receives hand-offs."""
    return folder / f"worker-{index}.sock"


def call_from_query(query: str) -> str | None:
    """The call a request names: ``CallUUID`` in the query, else the stream token's call (read
    without checking it: the owner checks it; this only chooses the worker)."""
    params = parse_qs(query)
    values = params.get(CALL_QUERY_KEY)
    if values and values[-1]:
        return values[-1]
    tokens = params.get(TOKEN_QUERY_KEY)
    return token_call(tokens[-1]) if tokens else None


def _call_from_form(body: bytes) -> str | None:
    try:
        pairs = parse_qsl(body.decode("utf-8"), max_num_fields=1000)
    except (UnicodeDecodeError, ValueError):
        return None
    values = [v for k, v in pairs if k == CALL_QUERY_KEY and v]
    return values[-1] if values else None


@attrs.frozen
class Moved:
    """What :meth:`Handoff.route` decided: ``conn`` is ``None`` when the connection went to
    another worker (close the local copy of the socket and forget it), else the connection
    to go on with here (a fresh one when the body had to be read to find the call)."""

    conn: HttpConnection | None


class Handoff:
    """One worker's side: hand connections to their owner, receive those handed to us.

    Args:
        index: this worker's index.
        count: the number of workers.
        folder: where the workers' Unix sockets live (made by the supervisor).
        routes: the route table (which paths belong to a call).
    """

    def __init__(self, index: int, count: int, folder: Path, routes: Routes) -> None:
        self.index = index
        self.count = count
        self.folder = folder
        self.routes = routes
        path = socket_path(folder, index)
        path.unlink(missing_ok=True)  # a predecessor's, if this worker was restarted
        self._inbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._inbox.bind(str(path))
        self._inbox.setblocking(False)
        self._outbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._outbox.setblocking(False)
        self.handed_off = 0
        self.received = 0

    def close(self) -> None:
        """Close both sockets (the inbox path is left for the next worker to replace)."""
        self._inbox.close()
        self._outbox.close()

    async def route(self, conn: HttpConnection, head: h11.Request) -> Moved:
        """Send ``conn`` to the owner of its call, or say how to go on with it here."""
        target = head.target.decode("ascii", "replace")
        path, _, query = target.partition("?")
        route = self.routes.get(path)
        if route is None or route[0] not in _ROUTED_KINDS:
            return Moved(conn)
        call = call_from_query(query)
        reread = False
        if call is None and route[0] != "stream" and head.method == b"POST":
            # a body that cannot be read is served here from its start, which answers the error
            with (
                trio.move_on_after(_http.BODY_TIMEOUT),
                contextlib.suppress(_http.HttpError, h11.RemoteProtocolError),
            ):
                call = _call_from_form(await conn.read_body(head))
            reread = True
        if call is not None:
            owner = owner_of(call, self.count)
            if owner != self.index and await self._send(owner, conn):
                log.debug(
                    "call=%s %s from %s handed to worker %d",
                    escape(call, 64),
                    route[0],
                    conn.client,
                    owner,
                )
                return Moved(None)
        if reread:  # parse the request again from its first byte
            return Moved(HttpConnection(conn.stream, conn.client, initial=conn.request_bytes))
        return Moved(conn)

    async def _send(self, owner: int, conn: HttpConnection) -> bool:
        stream = conn.stream
        data = conn.request_bytes
        if not isinstance(stream, trio.SocketStream) or len(data) > MAX_HANDOFF_BYTES:
            return False
        message = conn.client.encode("ascii", "replace")[:100] + b"\0" + data
        address = str(socket_path(self.folder, owner))
        fd = stream.socket.fileno()
        with trio.move_on_after(SEND_TIMEOUT):
            while True:
                try:
                    # socket.send_fds, with the address it drops before Python 3.12
                    self._outbox.sendmsg(
                        [message],
                        [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))],
                        0,
                        address,
                    )
                except BlockingIOError:  # the owner's queue is full: wait a little
                    await trio.sleep(0.005)
                    continue
                except OSError as exc:
                    log.warning(
                        "worker %d unreachable (%s); serving the request here",
                        owner,
                        errno.errorcode.get(exc.errno or 0, str(exc)),
                    )
                    return False
                self.handed_off += 1
                return True
        log.warning(
            "worker %d did not take a connection in %.0f s; served here", owner, SEND_TIMEOUT
        )
        return False

    async def receive(
        self,
        serve: Callable[[trio.SocketStream, bytes, str], Awaitable[None]],
        nursery: trio.Nursery,
    ) -> None:
        """Serve every connection handed to this worker: ``serve(stream, initial, client)``
        in ``nursery``, until cancelled."""
        while True:
            await trio.lowlevel.wait_readable(self._inbox)
            while True:
                try:
                    message, fds, _flags, _addr = socket.recv_fds(
                        self._inbox, MAX_HANDOFF_BYTES + 256, 4
                    )
                except BlockingIOError:
                    break
                if len(fds) != 1:
                    for fd in fds:
                        os.close(fd)
                    log.warning("hand-off with %d descriptors ignored", len(fds))
                    continue
                client_bytes, _, initial = message.partition(b"\0")
                sock = trio.socket.from_stdlib_socket(socket.socket(fileno=fds[0]))
                self.received += 1
                nursery.start_soon(
                    serve, trio.SocketStream(sock), initial, client_bytes.decode("ascii")
                )
