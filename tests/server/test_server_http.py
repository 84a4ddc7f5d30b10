"""The HTTP side of ``serve_flows`` over real sockets: answer, status, health, errors."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from urllib.parse import parse_qs, urlencode, urlsplit

import h11
import httpx
import pytest
import trio
from plivo.utils import validate_v3_signature
from serverkit import AUTH_TOKEN, NONCE, StartServer, echo, stream_element

from callflow import Call, Format, flow
from callflow.runtime import LiveCalls
from callflow.server import ServerInfo, _http, signature_v3, verify_stream_token

ANSWER = {"CallUUID": "call-1", "From": "111", "To": "222", "Direction": "inbound"}


class RecordingLiveCalls(LiveCalls):
    """A registry that records status callbacks and claims ``live-call`` is live."""

    def __init__(self) -> None:
        super().__init__()
        self.delivered: list[tuple[str, dict[str, str]]] = []

    def deliver_status(self, call_uuid: str, params: Mapping[str, str]) -> bool:
        self.delivered.append((call_uuid, dict(params)))
        return call_uuid == "live-call"


def token_of(stream_url: str) -> str:
    return stream_url.split("?t=", 1)[1].split("&", 1)[0]


def signed_headers(url: str, params: Mapping[str, str], method: str = "POST") -> dict[str, str]:
    signature = signature_v3(AUTH_TOKEN, method=method, url=url, params=params, nonce=NONCE)
    assert validate_v3_signature(method, url, NONCE, AUTH_TOKEN, signature, dict(params))
    return {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": NONCE}


# -- answer webhook ---------------------------------------------------------------------


async def test_answer_post(start_server: StartServer) -> None:
    info = await start_server()
    async with httpx.AsyncClient(base_url=info.url) as client:
        response = await client.post("/echo", data=ANSWER)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/xml"
    stream = stream_element(response.content)
    assert stream.get("contentType") == "audio/x-mulaw;rate=8000"
    assert stream.get("bidirectional") == "true"
    assert stream.get("statusCallbackUrl") == f"{info.url}/echo/status?CallUUID=call-1"
    url = stream.text
    assert url.startswith(f"ws://127.0.0.1:{info.port}/echo/stream?t=")
    token = verify_stream_token(token_of(url), path="/echo/stream", auth_token=None)
    assert token.params == ANSWER
    assert token.call_uuid == "call-1"


async def test_answer_get_takes_params_from_the_query(start_server: StartServer) -> None:
    info = await start_server()
    async with httpx.AsyncClient(base_url=info.url) as client:
        response = await client.get("/echo", params=ANSWER)
    assert response.status_code == 200
    url = stream_element(response.content).text
    assert verify_stream_token(token_of(url), path="/echo/stream", auth_token=None).params == ANSWER


async def test_public_url_from_forwarded_headers(start_server: StartServer) -> None:
    info = await start_server()
    headers = {"X-Forwarded-Proto": "https", "Host": "abc.ngrok.app"}
    async with httpx.AsyncClient(base_url=info.url) as client:
        response = await client.post("/echo", data=ANSWER, headers=headers)
    stream = stream_element(response.content)
    assert stream.text.startswith("wss://abc.ngrok.app/echo/stream?t=")
    assert stream.get("statusCallbackUrl") == "https://abc.ngrok.app/echo/status?CallUUID=call-1"


async def test_public_url_option_wins(start_server: StartServer) -> None:
    info = await start_server(public_url="https://calls.example.com/")
    async with httpx.AsyncClient(base_url=info.url) as client:
        response = await client.post("/echo", data=ANSWER, headers={"Host": "other"})
    stream = stream_element(response.content)
    assert stream.text.startswith("wss://calls.example.com/echo/stream?t=")
    assert (
        stream.get("statusCallbackUrl") == "https://calls.example.com/echo/status?CallUUID=call-1"
    )


async def test_long_params_are_trimmed_to_the_essential_ones(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    info = await start_server()
    params = {**ANSWER, "ALegUUID": "a-1", "Huge": "x" * 3000, "BillRate": "0.1"}
    url = await _answer_url(info, params)
    assert len(url) <= 2048
    token = verify_stream_token(token_of(url), path="/echo/stream", auth_token=None)
    assert token.params == {**ANSWER, "ALegUUID": "a-1"}
    assert any(
        "call=call-1" in r.message and "dropped: BillRate, Huge" in r.message
        for r in caplog.records
    )


async def _answer_url(info: ServerInfo, params: Mapping[str, str]) -> str:
    async with httpx.AsyncClient(base_url=info.url) as client:
        response = await client.post("/echo", data=dict(params))
    assert response.status_code == 200
    return str(stream_element(response.content).text)


# -- signatures -------------------------------------------------------------------------


async def test_signed_answer_is_accepted(start_server: StartServer) -> None:
    info = await start_server(auth_token=AUTH_TOKEN, public_url="https://abc.ngrok.app")
    headers = signed_headers("https://abc.ngrok.app/echo?lang=en", ANSWER)
    async with httpx.AsyncClient(base_url=info.url) as client:
        response = await client.post("/echo?lang=en", data=ANSWER, headers=headers)
    assert response.status_code == 200, response.text
    url = stream_element(response.content).text
    token = verify_stream_token(token_of(url), path="/echo/stream", auth_token=AUTH_TOKEN)
    assert token.signed
    assert token.params == {**ANSWER, "lang": "en"}


async def test_signed_get_against_forwarded_host(start_server: StartServer) -> None:
    info = await start_server(auth_token=AUTH_TOKEN)
    query = urlencode(ANSWER)
    headers = signed_headers(f"https://abc.ngrok.app/echo?{query}", {}, method="GET")
    headers |= {"X-Forwarded-Proto": "https", "Host": "abc.ngrok.app"}
    async with httpx.AsyncClient(base_url=info.url) as client:
        response = await client.get(f"/echo?{query}", headers=headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("forgery", ["bad signature", "other url", "no headers", "no nonce"])
async def test_forged_answer_is_refused(
    start_server: StartServer, caplog: pytest.LogCaptureFixture, forgery: str
) -> None:
    info = await start_server(auth_token=AUTH_TOKEN, public_url="https://abc.ngrok.app")
    headers = signed_headers("https://abc.ngrok.app/echo", ANSWER)
    if forgery == "bad signature":
        headers["X-Plivo-Signature-V3"] = signature_v3(
            "WRONG", method="POST", url="https://abc.ngrok.app/echo", params=ANSWER, nonce=NONCE
        )
    elif forgery == "other url":
        headers = signed_headers("https://evil.example.com/echo", ANSWER)
    elif forgery == "no headers":
        headers = {}
    else:
        del headers["X-Plivo-Signature-V3-Nonce"]
    async with httpx.AsyncClient(base_url=info.url) as client:
        response = await client.post("/echo", data=ANSWER, headers=headers)
    assert response.status_code == 403
    assert b"Stream" not in response.content
    assert any("http 403" in r.message and "call=call-1" in r.message for r in caplog.records), [
        r.message for r in caplog.records
    ]


# -- status callbacks --------------------------------------------------------------------


async def test_status_callback_reaches_live_calls(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    live = RecordingLiveCalls()
    info = await start_server(live_calls=live)
    status = {"CallUUID": "live-call", "StreamID": "s-1", "Event": "StartStream"}
    gone = {"CallUUID": "gone-call", "StreamID": "s-2", "Event": "StopStream"}
    caplog.set_level(logging.DEBUG, logger="callflow.server")
    async with httpx.AsyncClient(base_url=info.url) as client:
        first = await client.post("/echo/status", data=status)
        second = await client.get("/echo/status", params=gone)
    assert (first.status_code, second.status_code) == (200, 200)
    assert live.delivered == [("live-call", status), ("gone-call", gone)]
    messages = [r.message for r in caplog.records]
    assert any("call=live-call status StartStream StreamID=s-1" in m for m in messages)
    assert any("call=gone-call" in m and "no live call" in m for m in messages)


async def test_status_callback_signature_is_checked(start_server: StartServer) -> None:
    live = RecordingLiveCalls()
    info = await start_server(live_calls=live, auth_token=AUTH_TOKEN, public_url="http://x.test")
    status = {"CallUUID": "live-call", "StreamID": "s-1", "Event": "StopStream"}
    async with httpx.AsyncClient(base_url=info.url) as client:
        forged = await client.post("/echo/status", data=status)
        signed = await client.post(
            "/echo/status", data=status, headers=signed_headers("http://x.test/echo/status", status)
        )
    assert (forged.status_code, signed.status_code) == (403, 200)
    assert live.delivered == [("live-call", status)]


async def test_status_callback_without_call_uuid(start_server: StartServer) -> None:
    live = RecordingLiveCalls()
    info = await start_server(live_calls=live)
    async with httpx.AsyncClient(base_url=info.url) as client:
        response = await client.post("/echo/status", data={"Event": "StartStream"})
    assert response.status_code == 400
    assert b"CallUUID" in response.content
    assert live.delivered == []


# -- health and errors -------------------------------------------------------------------


@flow("/other", format=Format.L16_16K)
async def other(call: Call) -> None:
    await call.hangup()


async def test_healthz(start_server: StartServer) -> None:
    info = await start_server(flows=[echo, other])
    async with httpx.AsyncClient(base_url=info.url) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "status": "ok",
        "ready": True,
        "calls": 0,
        "flows": ["/echo", "/other"],
        "worker": 0,
        "pid": os.getpid(),
    }


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/nowhere", 404, None),
        ("PUT", "/echo", 405, "GET, POST"),
        ("POST", "/healthz", 405, "GET"),
        ("DELETE", "/echo/status", 405, "GET, POST"),
        ("GET", "/echo/stream", 426, None),
    ],
)
async def test_http_errors(
    start_server: StartServer, method: str, path: str, status: int, allow: str | None
) -> None:
    info = await start_server()
    async with httpx.AsyncClient(base_url=info.url) as client:
        response = await client.request(method, path)
        assert response.status_code == status
        assert response.headers.get("allow") == allow
        # The server is still there.
        assert (await client.get("/healthz")).status_code == 200


async def test_non_form_body_is_refused(start_server: StartServer) -> None:
    info = await start_server()
    async with httpx.AsyncClient(base_url=info.url) as client:
        response = await client.post("/echo", json={"CallUUID": "x"})
    assert response.status_code == 415


# Raw sockets for what an HTTP client library will not send.


async def _exchange(port: int, data: bytes, *, eof: bool = True) -> bytes:
    """Send ``data`` (then EOF) on a new connection; every byte received until the server
    closes."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        if eof:
            await stream.send_eof()
        received = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                received += chunk
    return received


async def test_malformed_http_gets_400(start_server: StartServer) -> None:
    info = await start_server()
    reply = await _exchange(info.port, b"THIS IS NOT HTTP\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 ")
    async with httpx.AsyncClient(base_url=info.url) as client:
        assert (await client.get("/healthz")).status_code == 200


async def test_oversize_body_gets_413(start_server: StartServer) -> None:
    info = await start_server()
    head = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 2000000\r\n\r\n"
    )
    reply = await _exchange(info.port, head + b"a=1")
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in reply.lower()


async def test_chunked_oversize_body_gets_413(start_server: StartServer) -> None:
    info = await start_server()
    chunk = b"a" * 65536
    body = (b"10000\r\n" + chunk + b"\r\n") * 17 + b"0\r\n\r\n"
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    reply = await _exchange(info.port, head + body)
    assert reply.startswith(b"HTTP/1.1 413 ")


async def test_keep_alive_serves_several_requests(start_server: StartServer) -> None:
    info = await start_server()
    client = h11.Connection(h11.CLIENT)
    stream = await trio.open_tcp_stream("127.0.0.1", info.port)
    async with stream:
        bodies = []
        for request in (
            h11.Request(method="GET", target="/healthz", headers=[("Host", "x")]),
            h11.Request(
                method="POST",
                target="/echo",
                headers=[
                    ("Host", "x"),
                    ("Content-Type", "application/x-www-form-urlencoded"),
                    ("Content-Length", "12"),
                ],
            ),
        ):
            data = client.send(request) or b""
            if request.method == b"POST":
                data += client.send(h11.Data(data=b"CallUUID=k-1")) or b""
            data += client.send(h11.EndOfMessage()) or b""
            await stream.send_all(data)
            body = b""
            status = 0
            with trio.fail_after(5):
                while True:
                    event = client.next_event()
                    if event is h11.NEED_DATA:
                        client.receive_data(await stream.receive_some(65536))
                    elif isinstance(event, h11.Response):
                        status = event.status_code
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage):
                        break
            assert status == 200
            bodies.append(body)
            client.start_next_cycle()
    assert json.loads(bodies[0])["status"] == "ok"
    assert b"<Stream" in bodies[1]


async def test_slow_head_gets_408_and_idle_connection_closes(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_http, "HEAD_TIMEOUT", 0.3)
    info = await start_server()
    with trio.fail_after(5):
        reply = await _exchange(info.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", eof=False)
        assert reply.startswith(b"HTTP/1.1 408 ")
        assert await _exchange(info.port, b"", eof=False) == b""


async def test_every_url_written_for_a_call_names_it_in_the_query(
    start_server: StartServer,
) -> None:
    info = await start_server()
    async with httpx.AsyncClient(base_url=info.url) as client:
        response = await client.post("/echo", data={**ANSWER, "CallUUID": "9f1c-42"})
    stream = stream_element(response.content)
    for url in (stream.text or "", stream.get("statusCallbackUrl") or ""):
        assert parse_qs(urlsplit(url).query)["CallUUID"] == ["9f1c-42"], url


@pytest.mark.parametrize("call_uuid", ["a&t=forged", "x" * 65, "call\nid", "é"])
async def test_a_call_id_that_is_not_a_plain_id_stays_out_of_the_urls(
    start_server: StartServer, call_uuid: str
) -> None:
    info = await start_server()
    async with httpx.AsyncClient(base_url=info.url) as client:
        response = await client.post("/echo", data={**ANSWER, "CallUUID": call_uuid})
    assert response.status_code == 200
    stream = stream_element(response.content)
    for url in (stream.text or "", stream.get("statusCallbackUrl") or ""):
        query = parse_qs(urlsplit(url).query)
        assert "CallUUID" not in query, url
    assert len(parse_qs(urlsplit(stream.text or "").query)["t"]) == 1
