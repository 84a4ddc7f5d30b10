"""callflow's WebSocket layer alone: ``callflow.server._wsfast`` with no routes and no tokens.

h11 reads the upgrade request head (callflow's ``HttpConnection``), the sans-IO handshake
completes from the bytes read, and one :class:`~callflow.server._wsfast.ReadLoop` reads every
socket, as in ``serve_flows``. With ``--bare`` each message is only parsed with ``json.loads``
(inline, in the read loop, through ``receive_until`` as callflow's reader is): the ceiling of
this layer (the bench's "bare" column). Without it, ``run_call`` runs the flow of
``bench/flows`` on the :class:`~callflow.server._wsfast.FastWebSocketTransport`.
``--no-read-loop``: each connection's task reads its own socket (the layer before the read
loop; the "bare_task" column).

    python -m bench.servers.wsfast_ivr [--bare] [--no-read-loop] --port 0
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
from pathlib import Path

import trio

from callflow import Flow, load_flows
from callflow.runtime import TransportClosed, receive_until, run_call
from callflow.server._http import HttpConnection
from callflow.server._wsfast import FastWebSocketTransport, HandshakeFailed, ReadLoop

FLOWS = Path(__file__).resolve().parent.parent / "flows"
HANDSHAKE_TIMEOUT = 10.0
"""Seconds for the request head and the handshake."""


def _parse_only(text: str) -> bool:
    json.loads(text)
    return False


async def _handle(flow: Flow | None, loop: ReadLoop | None, stream: trio.SocketStream) -> None:
    conn = HttpConnection(stream, "?")
    transport = None
    with trio.move_on_after(HANDSHAKE_TIMEOUT):
        try:
            head = await conn.read_head()
            if head is None:
                return
            transport = await FastWebSocketTransport.accept(
                stream, conn.request_bytes, close_timeout=5.0, read_loop=loop
            )
        except HandshakeFailed:
            return
    if transport is None:
        await trio.aclose_forcefully(stream)
        return
    if flow is None:
        try:
            await receive_until(transport, _parse_only)
        except TransportClosed:
            pass
        finally:
            await transport.aclose()
        return
    try:
        await run_call(flow, transport)
    finally:
        await transport.aclose(1000, "call ended")


async def _serve(host: str, port: int, bare: bool, read_loop: bool) -> None:
    flow = None if bare else load_flows(FLOWS)[0]
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()
    loop = ReadLoop() if read_loop and ReadLoop.available() else None
    async with trio.open_nursery() as nursery:
        if loop is not None:
            nursery.start_soon(loop.run)
        print(f"listening on http://{bound[0]}:{bound[1]}", flush=True)
        await trio.serve_listeners(functools.partial(_handle, flow, loop), listeners)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bare", action="store_true", help="parse each message, nothing else")
    parser.add_argument(
        "--no-read-loop", action="store_true", help="each connection reads its own socket"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(_serve, args.host, args.port, args.bare, not args.no_read_loop)


if __name__ == "__main__":
    main()
