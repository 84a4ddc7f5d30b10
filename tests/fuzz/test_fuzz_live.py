"""A bounded live fuzz run: malformed traffic of every kind against the real server
(127.0.0.1) while a normal call runs beside it; the normal call is undisturbed."""

from __future__ import annotations

import json
import logging
import random

import httpx
import pytest
import trio
from serverkit import (
    StartServer,
    answer,
    dtmf_message,
    plivo_socket,
    sent_dtmf,
    start_message,
)

from callflow.observe import MAX_LINE_CHARS

KEYS = "1234567890" * 3  # not "*": the echo flow waits for a status callback on it


async def raw(port: int, data: bytes) -> None:
    """Send ``data`` on a new connection and read whatever comes back until it closes."""
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        return
    async with stream:
        try:
            await stream.send_all(data)
            await stream.send_eof()
            with trio.move_on_after(10):
                while await stream.receive_some(65536):
                    pass
        except trio.BrokenResourceError:
            pass


def malformed_requests(rng: random.Random) -> list[bytes]:
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\n"
    smuggle = b"0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    out = [
        head + b"Content-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n" + smuggle,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 60_000 + b"\r\n\r\n",
        head + b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1048576"
        b"\r\n\r\n" + b"k=v&" * 1000,
        b"GET /echo/stream?t=%C3%A9.x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    ]
    form = b"CallUUID=x%0AFORGED+line&From=%00"
    out.append(
        head + b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: " + str(len(form)).encode() + b"\r\n\r\n" + form
    )
    out += [rng.randbytes(rng.randrange(1, 600)) for _ in range(40)]
    return out


def malformed_messages(rng: random.Random, count: int) -> list[str]:
    forms = [
        "not json\nFORGED",
        json.dumps({"event": "e" * 20_000}),
        json.dumps({"event": "media", "media": {"payload": "!!"}}),
        json.dumps({"event": "dtmf", "dtmf": {"digit": "77"}}),
        json.dumps({"event": "start", "start": {}}),
        "[" * 40,
    ]
    return [rng.choice(forms) for _ in range(count)] + [
        rng.randbytes(50).decode("latin-1") for _ in range(count // 10)
    ]


async def noisy_stream(port: int, rng: random.Random) -> None:
    """A tokenless stream (signatures are off) that sends its start, then garbage."""
    async with plivo_socket(f"ws://127.0.0.1:{port}/echo/stream") as ws:
        await ws.send_message(start_message(f"noisy-{rng.random()}"))
        for text in malformed_messages(rng, 300):
            await ws.send_message(text)


async def test_malformed_traffic_beside_a_normal_call(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(9)
    info = await start_server()
    url = await answer(info, {"CallUUID": "good-call", "Digits": "42"})
    echoed: list[str] = []
    with caplog.at_level(logging.INFO, "callflow"):
        async with trio.open_nursery() as attackers:
            for data in malformed_requests(rng):
                attackers.start_soon(raw, info.port, data)
            for _ in range(8):
                attackers.start_soon(noisy_stream, info.port, random.Random(rng.random()))
            async with plivo_socket(url) as ws:
                await ws.send_message(start_message("good-call"))
                assert sent_dtmf(await ws.get_message()) == "42"
                for key in KEYS:
                    await ws.send_message(dtmf_message(key))
                    with trio.fail_after(5):
                        echoed.append(sent_dtmf(await ws.get_message()))
                    await trio.sleep(0.01)
                await ws.send_message(dtmf_message("#"))
        async with httpx.AsyncClient(base_url=info.url) as client:
            assert (await client.get("/healthz")).status_code == 200
    assert echoed == list(KEYS)
    records = caplog.records
    assert not [r for r in records if r.exc_info or r.levelno >= logging.ERROR]
    lines = "\n".join(r.getMessage() for r in records).splitlines()
    assert len(lines) == len(records)  # no forged line break
    assert max(map(len, lines)) <= MAX_LINE_CHARS
    assert any("call=good-call" in line and "ended" in line for line in lines)
