"""Helpers for the server tests: a tiny flow, Plivo's side of HTTP and WebSocket."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import trio
import trio_websocket
from lxml import etree

from callflow import Call, Format, flow
from callflow.server import ServerInfo

StartServer = Callable[..., Awaitable[ServerInfo]]
"""The ``start_server`` fixture: ``info = await start_server(flows=[…], **serve_flows_kwargs)``."""

AUTH_TOKEN = "MY_AUTH_TOKEN_0123456789abcdef"
NONCE = "12345678901234567890"


def fresh_nonce() -> str:
    """A new 20-digit Signature V3 nonce, as Plivo sends with each request it signs."""
    return str(secrets.randbelow(10**20)).zfill(20)


@flow("/echo", format=Format.MULAW_8K)
async def echo(call: Call) -> None:
    """Sends the answer param ``Digits`` (or ``0``) as DTMF, then echoes every key back.

    ``#`` ends the call; ``*`` waits for a ``StopStream`` status callback, then sends ``9``.
    """
    await call.send_dtmf(call.answer_params.get("Digits", "0"))
    while True:
        digit = await call.wait_dtmf()
        if digit == "#":
            return
        if digit == "*":
            await call.wait_status("StopStream")
            await call.send_dtmf("9")
            continue
        await call.send_dtmf(digit)


async def answer(
    info: ServerInfo, params: Mapping[str, str], *, path: str = "/echo", **kwargs: Any
) -> str:
    """POST the answer webhook; the ``<Stream>`` URL from the XML."""
    async with httpx.AsyncClient(base_url=info.url) as client:
        response = await client.post(path, data=dict(params), **kwargs)
    assert response.status_code == 200, response.text
    return stream_element(response.content).text or ""


@asynccontextmanager
async def plivo_socket(url: str) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """A WebSocket client (Plivo's side) connected to ``url``.

    Like ``trio_websocket.open_websocket_url``, but on a TCP stream this helper owns and
    always closes: trio-websocket 0.12.2's client leaks its socket when the server closes
    first or rejects the handshake (a ResourceWarning, which is an error here). A rejected
    handshake raises ``ExceptionGroup[ConnectionRejected]``.
    """
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    resource = parts.path + (f"?{parts.query}" if parts.query else "")
    stream = await trio.open_tcp_stream(parts.hostname, parts.port)
    async with stream, trio.open_nursery() as nursery:
        with trio.fail_after(5):
            ws = await trio_websocket.wrap_client_stream(nursery, stream, parts.netloc, resource)
        try:
            yield ws
        finally:
            with trio.move_on_after(2):
                await ws.aclose()
            await stream.aclose()
            nursery.cancel_scope.cancel()


def stream_element(xml: bytes) -> Any:
    root = etree.fromstring(xml)
    assert root.tag == "Response"
    stream = root.find("Stream")
    assert stream is not None
    return stream


def start_message(
    call_id: str = "call-1", encoding: str = "audio/x-mulaw", rate: int = 8000
) -> str:
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": 1,
            "start": {
                "callId": call_id,
                "streamId": "stream-1",
                "accountId": "MA123",
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": encoding, "sampleRate": rate},
            },
            "extra_headers": "{}",
        }
    )


def dtmf_message(digit: str) -> str:
    return json.dumps(
        {
            "event": "dtmf",
            "sequenceNumber": 2,
            "streamId": "stream-1",
            "dtmf": {"digit": digit, "track": "inbound", "timestamp": "1700000000000"},
            "extra_headers": "{}",
        }
    )


def sent_dtmf(message: str | bytes) -> str:
    """The digits of a ``sendDTMF`` command from callflow."""
    body = json.loads(message)
    assert body["event"] == "sendDTMF", body
    digits: str = body["dtmf"]
    return digits
