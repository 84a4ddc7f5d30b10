"""The cap on open connections: below the descriptor limit, with headroom for calls' streams;
a clear 503 (and a metric) when nothing can make room. Real sockets on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

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
    stream_element,
)

from callflow.observe import METRICS
from callflow.server import _conncap
from callflow.server._conncap import RESERVED_FDS, ConnectionCap


async def test_the_cap_evicts_the_longest_waiting_connection_then_refuses() -> None:
    cap = ConnectionCap(max_connections=8)  # 6 for requests, 2 more for calls
    assert cap.max_requests == 6
    scopes = [trio.CancelScope() for _ in range(11)]
    for scope in scopes[:6]:
        assert cap.admit(scope)
    cap.waiting(scopes[1])
    cap.waiting(scopes[3])
    assert cap.admit(scopes[6])  # room made: the one waiting longest is closed
    assert scopes[1].cancel_called
    assert not scopes[3].cancel_called
    cap.became_call(scopes[0])  # two become calls: two request places are free again
    cap.became_call(scopes[2])
    assert cap.admit(scopes[7])
    assert cap.admit(scopes[8])  # 8 open: 2 calls, 6 requests
    assert not scopes[3].cancel_called
    assert cap.admit(scopes[9])  # over the cap: the other waiting one is closed
    assert scopes[3].cancel_called
    assert not cap.admit(scopes[10])  # nothing waits: refused
    cap.release(scopes[4])
    assert cap.admit(scopes[10])


@asynccontextmanager
async def idle_connections(port: int, count: int) -> AsyncIterator[list[trio.SocketStream]]:
    """``count`` connections that send nothing, as a slowloris peer opens them."""
    async with AsyncExitStack() as stack:
        streams = []
        for _ in range(count):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stack.enter_async_context(stream)
            streams.append(stream)
        yield streams


async def echo_call(url: str, call_id: str) -> None:
    async with plivo_socket(url) as ws:
        await ws.send_message(start_message(call_id))
        assert sent_dtmf(await ws.get_message()) == "0"
        await ws.send_message(dtmf_message("5"))
        assert sent_dtmf(await ws.get_message()) == "5"
        await ws.send_message(dtmf_message("#"))


async def test_idle_connections_cannot_keep_a_call_out(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_conncap, "descriptor_limit", lambda: RESERVED_FDS + 40)
    info = await start_server()
    async with idle_connections(info.port, 100):
        url = await answer(info, {"CallUUID": "through"})
        with trio.fail_after(10):
            await echo_call(url, "through")
        async with httpx.AsyncClient(base_url=info.url) as client:
            assert (await client.get("/healthz")).status_code == 200


def refused() -> float:
    return METRICS.registry.get_sample_value("callflow_connections_refused_total") or 0.0


async def test_at_the_cap_with_nothing_to_close_a_clear_503(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_conncap, "descriptor_limit", lambda: RESERVED_FDS + 8)
    info = await start_server()
    before = refused()
    async with AsyncExitStack() as stack:
        for n in range(8):  # 8 live calls fill the cap
            ws = await stack.enter_async_context(
                plivo_socket(f"ws://127.0.0.1:{info.port}/echo/stream")
            )
            await ws.send_message(start_message(f"live-{n}"))
            assert sent_dtmf(await ws.get_message()) == "0"
        stream = await trio.open_tcp_stream("127.0.0.1", info.port)
        async with stream:
            await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = b""
            with trio.fail_after(5):
                while chunk := await stream.receive_some(65536):
                    reply += chunk
    assert reply.startswith(b"HTTP/1.1 503 ")
    assert b"retry-after: 1" in reply.lower()
    assert refused() == before + 1


_SERVER = """
import resource, sys, trio, functools
sys.path.insert(0, sys.argv[1])
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[2]), int(sys.argv[2])))
from serverkit import echo
from callflow.server import serve_flows

async def main():
    async with trio.open_nursery() as nursery:
        info = await nursery.start(functools.partial(serve_flows, [echo], port=0))
        print(info.port, flush=True)

trio.run(main)
"""


async def test_at_the_descriptor_limit_no_emfile_and_requests_are_served(
    tmp_path: Path,
) -> None:
    limit = 200
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", textwrap.dedent(_SERVER), str(Path(__file__).parent), str(limit)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stderr = b""
    try:
        assert process.stdout is not None
        assert process.stderr is not None
        with trio.fail_after(20):
            line = b""
            while not line.endswith(b"\n"):
                line += await process.stdout.receive_some(100)
        port = int(line)
        async with idle_connections(port, 2 * limit):
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                with trio.fail_after(10):
                    for _ in range(5):
                        assert (await client.get("/healthz")).status_code == 200
            url = await answer_url(port)
            with trio.fail_after(10):
                await echo_call(url, "at-the-limit")
    finally:
        process.terminate()
        with trio.move_on_after(10):
            await process.wait()
        if process.stderr is not None:
            with trio.move_on_after(2):
                while chunk := await process.stderr.receive_some(65536):
                    stderr += chunk
    assert b"EMFILE" not in stderr
    assert b"Too many open files" not in stderr


async def answer_url(port: int) -> str:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        response = await client.post("/echo", data={"CallUUID": "at-the-limit"})
    assert response.status_code == 200
    return str(stream_element(response.content).text)
