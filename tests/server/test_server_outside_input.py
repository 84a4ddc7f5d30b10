"""What an unauthenticated peer can send the real server (127.0.0.1): every refusal is one
clear HTTP reply, and no log line quotes it unescaped or unbounded."""

from __future__ import annotations

import logging

import pytest
import trio
from serverkit import AUTH_TOKEN, StartServer

from callflow.server import StreamTokenError, verify_stream_token


async def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` (then EOF) on a new connection; every byte received until the server
    closes."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        await stream.send_eof()
        received = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                received += chunk
    return received


def upgrade(target: str) -> bytes:
    return (
        f"GET {target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("auth_token", [AUTH_TOKEN, None])
def test_a_non_ascii_token_is_malformed(auth_token: str | None) -> None:
    with pytest.raises(StreamTokenError, match="malformed: not ASCII"):
        verify_stream_token("é.x", path="/echo/stream", auth_token=auth_token)


@pytest.mark.parametrize("auth_token", [AUTH_TOKEN, None])
async def test_a_non_ascii_token_gets_403_not_a_traceback(
    start_server: StartServer, caplog: pytest.LogCaptureFixture, auth_token: str | None
) -> None:
    info = await start_server(auth_token=auth_token)
    with caplog.at_level(logging.INFO, "callflow"):
        reply = await exchange(info.port, upgrade("/echo/stream?t=%C3%A9.x"))
    assert reply.startswith(b"HTTP/1.1 403 "), reply
    assert b"malformed: not ASCII" in reply
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
