"""HTTP framing and limits as RFC 9112 says, on the real server (127.0.0.1)."""

from __future__ import annotations

import urllib.parse

import pytest
import trio
from serverkit import AUTH_TOKEN, StartServer

from callflow.server import _http
from callflow.server._http import MAX_BODY_BYTES, MAX_FORM_PARAMS, MAX_HEAD_BYTES


async def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` in one write (then EOF); every byte received until the server closes."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        await stream.send_eof()
        received = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                received += chunk
    return received


async def test_content_length_with_transfer_encoding_is_400_and_closes(
    start_server: StartServer,
) -> None:
    info = await start_server()
    smuggled = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    body = b"0\r\n\r\n" + smuggled
    request = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + body
    )
    reply = await exchange(info.port, request)
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in reply.lower()
    assert reply.count(b"HTTP/1.1 ") == 1  # the hidden request was never answered


@pytest.mark.parametrize("size", [MAX_HEAD_BYTES + 100, 20_000, 60_000])
async def test_one_head_limit_however_the_bytes_arrive(
    start_server: StartServer, size: int
) -> None:
    info = await start_server()
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: "
    request = head + b"a" * (size - len(head) - 4) + b"\r\n\r\n"
    assert len(request) == size
    reply = await exchange(info.port, request)
    assert reply.startswith(b"HTTP/1.1 431 ")


async def test_a_head_just_within_the_limit_is_served(start_server: StartServer) -> None:
    info = await start_server()
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: "
    request = head + b"a" * (MAX_HEAD_BYTES - len(head) - 4) + b"\r\n\r\n"
    reply = await exchange(info.port, request)
    assert reply.startswith(b"HTTP/1.1 200 ")


def form_request(body: bytes, path: str = "/echo") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the texts the server hands to ``parse_qsl``."""
    seen: list[int] = []
    real = urllib.parse.parse_qsl

    def counting(text: str, *args: object, **kwargs: object) -> list[tuple[str, str]]:
        seen.append(len(text))
        return real(text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_http, "parse_qsl", counting)
    return seen


@pytest.mark.parametrize("auth_token", [AUTH_TOKEN, None])
async def test_a_1_mib_form_of_200_000_params_is_413_unread_and_unparsed(
    start_server: StartServer, parses: list[int], auth_token: str | None
) -> None:
    info = await start_server(auth_token=auth_token)
    body = b"&".join(b"k%d=v" % n for n in range(200_000))[: 1 << 20]
    reply = await exchange(info.port, form_request(body))
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert parses == []


@pytest.mark.parametrize("auth_token", [AUTH_TOKEN, None])
async def test_a_form_over_the_param_count_is_413_unparsed(
    start_server: StartServer, parses: list[int], auth_token: str | None
) -> None:
    info = await start_server(auth_token=auth_token)
    body = b"&".join(b"k=v" for _ in range(MAX_FORM_PARAMS + 1))
    assert len(body) < MAX_BODY_BYTES
    reply = await exchange(info.port, form_request(body))
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert b"params" in reply
    assert parses == [0]  # only the (empty) query was parsed


async def test_a_query_over_the_param_count_is_413(start_server: StartServer) -> None:
    info = await start_server()
    query = "&".join("k=v" for _ in range(MAX_FORM_PARAMS + 1))
    reply = await exchange(info.port, f"GET /echo?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 413 ")


async def test_a_form_within_the_limits_is_answered(start_server: StartServer) -> None:
    info = await start_server()
    params = [("CallUUID", "c-1")] + [(f"X-PH-{n}", "v") for n in range(MAX_FORM_PARAMS - 1)]
    body = urllib.parse.urlencode(params).encode()
    reply = await exchange(info.port, form_request(body))
    assert reply.startswith(b"HTTP/1.1 200 ")
