"""A stand-in for Plivo's REST API on 127.0.0.1: it records every request and answers 204 to
DELETE and 202 to POST (or whatever a test sets in ``status``, with a JSON ``body``), or
answers so slowly that it never finishes (``stalled``). trio + h11, one request per
connection."""

from __future__ import annotations

import json
from collections.abc import Mapping

import attrs
import h11
import trio


@attrs.frozen
class Request:
    """One request the server took."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


class RestRecorder:
    """Serve with ``trio.serve_tcp(recorder.handle, 0, host="127.0.0.1")``."""

    def __init__(self) -> None:
        self.port = 0
        self.requests: list[Request] = []
        self.status = {"DELETE": 204, "POST": 202}
        """The answer's status code, by method."""
        self.body: dict[str, object] = {}
        """A JSON body to answer with, by method (none when absent)."""
        self.stalled = False
        """Answer one byte every 0.1 s and never finish: a hung API that no per-read timeout
        catches."""

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def calls(self, method: str) -> list[str]:
        """The targets of the requests made with ``method``, in order."""
        return [r.target for r in self.requests if r.method == method]

    async def handle(self, stream: trio.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        body = b""
        async with stream:
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    connection.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Request):
                    request, body = event, b""
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    assert request is not None
                    method = request.method.decode()
                    self.requests.append(
                        Request(
                            method,
                            request.target.decode(),
                            {k.decode(): v.decode() for k, v in request.headers},
                            body,
                        )
                    )
                    if self.stalled:
                        await self._stall(stream)
                        return
                    status = self.status.get(method, 405)
                    payload = b""
                    if method in self.body:
                        payload = json.dumps(self.body[method]).encode()
                    headers = [
                        ("content-type", "application/json"),
                        ("content-length", str(len(payload))),
                        ("connection", "close"),
                    ]
                    response = h11.Response(status_code=status, headers=headers)
                    await stream.send_all(connection.send(response) or b"")
                    if payload:
                        await stream.send_all(connection.send(h11.Data(data=payload)) or b"")
                    await stream.send_all(connection.send(h11.EndOfMessage()) or b"")
                    return
                else:  # ConnectionClosed, PAUSED
                    return

    async def _stall(self, stream: trio.SocketStream) -> None:
        """A response that never ends, a byte at a time, until the client gives up."""
        try:
            await stream.send_all(b"HTTP/1.1 200 OK\r\nx-stalled: ")
            while True:
                await trio.sleep(0.1)
                await stream.send_all(b"z")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
