"""The transport ceiling: trio-websocket (callflow's WebSocket layer) parsing each message.

Every connection is accepted; each message is read and parsed with ``json.loads``; nothing
else happens and nothing is sent (pings are answered by trio-websocket itself). The same
limits as callflow's server: 64 KB messages, a 64 KB receive buffer.

    python -m bench.servers.bare_trio_websocket --port 0
"""

from __future__ import annotations

import argparse
import contextlib
import json

import trio
import trio_websocket

MAX_MESSAGE_SIZE = 65536
"""Largest message accepted, in bytes (Plivo's limit, as callflow's server)."""


async def _handler(request: trio_websocket.WebSocketRequest) -> None:
    ws = await request.accept()
    loads = json.loads
    try:
        while True:
            loads(await ws.get_message())
    except trio_websocket.ConnectionClosed:
        pass


async def _serve(host: str, port: int) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            lambda task_status: trio_websocket.serve_websocket(
                _handler,
                host,
                port,
                None,
                max_message_size=MAX_MESSAGE_SIZE,
                receive_buffer_size=65536,
                task_status=task_status,
            )
        )
        print(f"listening on http://{host}:{server.port}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(_serve, args.host, args.port)


if __name__ == "__main__":
    main()
