"""What an unauthenticated peer can send the real server (127.0.0.1): every refusal is one
clear HTTP reply, and no log line quotes it unescaped or unbounded."""

from __future__ import annotations

import logging

import httpx
import pytest
import trio
from serverkit import AUTH_TOKEN, StartServer

from callflow.observe import MAX_LINE_CHARS
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


def lines_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The captured log as the handler would write it: one message per record, split on
    every line break a terminal or log shipper would honour."""
    text = "\n".join(record.getMessage() for record in records(caplog))
    return text.splitlines()


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The records, but the loop watchdog's (its stall report, a multi-line stack when the
    machine is loaded, is the server's own text)."""
    return [r for r in caplog.records if r.name != "callflow.server.watchdog"]


def assert_log_is_safe(caplog: pytest.LogCaptureFixture, forged: str = "FORGED") -> None:
    lines = lines_of(caplog)
    assert len(lines) == len(records(caplog)), "a log message holds a line break"
    assert not [line for line in lines if line.startswith(forged)]
    assert max(map(len, lines), default=0) <= MAX_LINE_CHARS


@pytest.mark.parametrize("path", ["/echo", "/echo/status", "/echo/machine"])
async def test_an_unsigned_webhook_cannot_forge_a_log_line(
    start_server: StartServer, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    info = await start_server(auth_token=AUTH_TOKEN)
    forged = {"CallUUID": "x\nFORGED call=admin logged in\r\x00", "Event": "e\nFORGED"}
    with caplog.at_level(logging.DEBUG, "callflow"):
        async with httpx.AsyncClient(base_url=info.url) as client:
            response = await client.post(path, data=forged)
    assert response.status_code == 403
    assert "\n" not in response.text.rstrip("\n")
    assert "call=x\\nFORGED" in response.text
    assert_log_is_safe(caplog)
    assert any("call=x\\nFORGED" in line for line in lines_of(caplog))


async def test_a_1_mb_param_makes_neither_a_1_mb_line_nor_a_1_mb_body(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    info = await start_server(auth_token=AUTH_TOKEN)
    with caplog.at_level(logging.DEBUG, "callflow"):
        async with httpx.AsyncClient(base_url=info.url) as client:
            huge = await client.post("/echo", data={"CallUUID": "c" * 1_000_000})
            response = await client.post("/echo", data={"CallUUID": "c" * 60_000})
            in_query = await client.post("/echo?CallUUID=" + "q" * 10_000, data={"a": "1"})
    assert huge.status_code == 413  # over the body limit: refused unread
    assert response.status_code == 403
    assert in_query.status_code == 403
    assert max(len(r.content) for r in (huge, response, in_query)) < 1000
    assert_log_is_safe(caplog)


async def test_refused_requests_are_rate_limited_per_peer(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    info = await start_server(auth_token=AUTH_TOKEN)
    with caplog.at_level(logging.DEBUG, "callflow"):
        async with httpx.AsyncClient(base_url=info.url) as client:
            for n in range(50):
                response = await client.post("/echo", data={"CallUUID": f"c{n}"})
                assert response.status_code == 403
    refusals = [line for line in lines_of(caplog) if "http 403" in line]
    assert len(refusals) == 10


async def test_refused_stream_upgrades_are_rate_limited_per_peer(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    info = await start_server(auth_token=AUTH_TOKEN)
    with caplog.at_level(logging.DEBUG, "callflow"):
        for n in range(30):
            reply = await exchange(info.port, upgrade(f"/echo/stream?t=forged{n}%0A.x"))
            assert reply.startswith(b"HTTP/1.1 403 ")
    refusals = [line for line in lines_of(caplog) if "ws 403" in line]
    assert len(refusals) == 10
    assert_log_is_safe(caplog)


async def test_a_ping_in_the_handshake_write_is_answered_after_the_101(
    start_server: StartServer,
) -> None:
    info = await start_server()
    ping = b"\x89\x80\x00\x00\x00\x00"  # masked, empty
    reply = await exchange(info.port, upgrade("/echo/stream") + ping)
    assert reply.startswith(b"HTTP/1.1 101 ")
    assert b"\r\n\r\n\x8a\x00" in reply  # the pong, after the response head
