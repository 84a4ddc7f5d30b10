"""The stream WebSocket of ``serve_flows`` with a real WebSocket client (Plivo's side).

Most tests run the real runtime (``run_call``) with the ``echo`` flow from conftest; the
crash-isolation test replaces ``run_call`` with one that raises, since the real one never does.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping

import httpx
import pytest
import trio
import trio_websocket
from serverkit import (
    AUTH_TOKEN,
    NONCE,
    StartServer,
    answer,
    dtmf_message,
    echo,
    plivo_socket,
    sent_dtmf,
    start_message,
)
from trio_websocket import ConnectionClosed, ConnectionRejected

from callflow._flow import Flow
from callflow.runtime import Transport
from callflow.runtime import run_call as real_run_call
from callflow.server import ServerInfo, _app, _streams, make_stream_token, serve_flows, signature_v3

ANSWER = {"CallUUID": "call-1", "From": "111", "To": "222", "Direction": "inbound", "Digits": "42"}


async def rejection(port: int, resource: str) -> ConnectionRejected:
    """The ``ConnectionRejected`` a trio-websocket client gets for ``resource``."""
    rejected: list[ConnectionRejected] = []
    try:
        async with plivo_socket(f"ws://127.0.0.1:{port}{resource}"):
            pass
    except* ConnectionRejected as group:
        rejected.extend(e for e in group.exceptions if isinstance(e, ConnectionRejected))
    assert len(rejected) == 1, "the handshake was accepted"
    return rejected[0]


async def test_valid_token_runs_the_flow_with_the_answer_params(start_server: StartServer) -> None:
    info = await start_server(auth_token=AUTH_TOKEN)
    url = await answer(info, ANSWER, headers=_signed(info, ANSWER))
    async with plivo_socket(url) as ws:
        await ws.send_message(start_message("call-1"))
        assert sent_dtmf(await ws.get_message()) == "42"  # Digits came through the token
        await ws.send_message(dtmf_message("5"))
        assert sent_dtmf(await ws.get_message()) == "5"
        await ws.send_message(dtmf_message("#"))  # the flow returns: the call ends
        with pytest.raises(ConnectionClosed) as info_closed:
            await ws.get_message()
    assert info_closed.value.reason is not None
    assert info_closed.value.reason.code == 1000


def _signed(info: ServerInfo, params: Mapping[str, str]) -> dict[str, str]:
    signature = signature_v3(
        AUTH_TOKEN, method="POST", url=f"{info.url}/echo", params=params, nonce=NONCE
    )
    return {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": NONCE}


@pytest.mark.parametrize(
    "problem", ["missing", "bad signature", "expired", "wrong path", "unsigned"]
)
async def test_bad_token_is_refused_with_403(
    start_server: StartServer, caplog: pytest.LogCaptureFixture, problem: str
) -> None:
    info = await start_server(auth_token=AUTH_TOKEN)
    base = "/echo/stream"
    good = make_stream_token("/echo/stream", ANSWER, auth_token=AUTH_TOKEN)
    query = {
        "missing": "",
        "bad signature": "?t=" + make_stream_token("/echo/stream", ANSWER, auth_token="WRONG"),
        "expired": "?t="
        + make_stream_token("/echo/stream", ANSWER, auth_token=AUTH_TOKEN, now=time.time() - 301),
        "wrong path": "?t=" + make_stream_token("/sales/stream", ANSWER, auth_token=AUTH_TOKEN),
        "unsigned": "?t=" + good.split(".")[0] + ".",
    }[problem]
    rejected = await rejection(info.port, base + query)
    assert rejected.status_code == 403
    assert rejected.body is not None
    assert problem.encode() in rejected.body
    refusal = next(r.message for r in caplog.records if "ws 403" in r.message)
    assert problem in refusal
    # a token whose signature checks out names its call; a forged one names none
    named = problem in ("expired", "wrong path")
    assert ("call=call-1 " in refusal) is named, refusal
    # A valid token still works afterwards.
    async with plivo_socket(f"ws://127.0.0.1:{info.port}{base}?t={good}") as ws:
        await ws.send_message(start_message("call-1"))
        assert sent_dtmf(await ws.get_message()) == "42"


async def test_development_mode_accepts_no_token(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    info = await start_server()
    assert any("NOT checked" in r.message for r in caplog.records)
    async with plivo_socket(f"ws://127.0.0.1:{info.port}/echo/stream") as ws:
        await ws.send_message(start_message("dev-call"))
        assert sent_dtmf(await ws.get_message()) == "0"  # no answer params


async def test_pings_are_answered_and_binary_and_fragmented_frames_are_read(
    start_server: StartServer,
) -> None:
    info = await start_server()
    async with plivo_socket(f"ws://127.0.0.1:{info.port}/echo/stream") as ws:
        with trio.fail_after(5):
            await ws.ping(b"are-you-there")  # returns once the matching pong arrives
        await ws.send_message(start_message("ping-call").encode())  # a binary frame
        assert sent_dtmf(await ws.get_message()) == "0"
        with trio.fail_after(5):
            await ws.ping()
        await ws.send_message(dtmf_message("5"))
        assert sent_dtmf(await ws.get_message()) == "5"


async def test_upgrade_to_an_unknown_path_gets_404(start_server: StartServer) -> None:
    info = await start_server()
    rejected = await rejection(info.port, "/nowhere/stream")
    assert rejected.status_code == 404


async def test_oversize_message_closes_only_that_call(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    info = await start_server()
    url_a = await answer(info, {**ANSWER, "CallUUID": "call-a"})
    url_b = await answer(info, {**ANSWER, "CallUUID": "call-b"})
    async with plivo_socket(url_a) as a, plivo_socket(url_b) as b:
        await a.send_message(start_message("call-a"))
        await b.send_message(start_message("call-b"))
        assert sent_dtmf(await a.get_message()) == "42"
        assert sent_dtmf(await b.get_message()) == "42"
        await a.send_message('{"event":"media","pad":"' + "x" * 70_000 + '"}')
        with trio.fail_after(5), pytest.raises(ConnectionClosed) as closed:
            await a.get_message()
        assert closed.value.reason is not None
        assert closed.value.reason.code == 1009
        await b.send_message(dtmf_message("7"))
        assert sent_dtmf(await b.get_message()) == "7"
    assert any("call=call-a" in r.message and "1009" in r.message for r in caplog.records)


async def test_status_callback_reaches_the_running_flow(start_server: StartServer) -> None:
    info = await start_server()
    url = await answer(info, ANSWER)
    async with plivo_socket(url) as ws, httpx.AsyncClient(base_url=info.url) as http:
        await ws.send_message(start_message("call-1"))
        assert sent_dtmf(await ws.get_message()) == "42"
        await ws.send_message(dtmf_message("*"))  # the flow now waits for StopStream
        await trio.sleep(0.05)
        health = (await http.get("/healthz")).json()
        assert health["calls"] == 1
        status = {"CallUUID": "call-1", "StreamID": "stream-1", "Event": "StopStream"}
        assert (await http.post("/echo/status", data=status)).status_code == 200
        with trio.fail_after(5):
            assert sent_dtmf(await ws.get_message()) == "9"


async def test_a_crashing_call_does_not_touch_the_server(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def run_call(flow: Flow, transport: Transport, **kwargs: object) -> None:
        params = kwargs["answer_params"]
        assert isinstance(params, Mapping)
        if params.get("CallUUID") == "doomed":
            raise RuntimeError("flow machinery exploded")
        await real_run_call(flow, transport, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_streams, "run_call", run_call)
    info = await start_server()
    doomed = await answer(info, {**ANSWER, "CallUUID": "doomed"})
    async with plivo_socket(doomed) as ws:
        with trio.fail_after(5), pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
    assert closed.value.reason is not None
    assert closed.value.reason.code == 1011
    assert any("call=doomed" in r.message and r.exc_info is not None for r in caplog.records)
    # Another call on the same server is fine.
    url = await answer(info, ANSWER)
    async with plivo_socket(url) as ws:
        await ws.send_message(start_message("call-1"))
        assert sent_dtmf(await ws.get_message()) == "42"


async def _serve_in_scope(
    scope: trio.CancelScope,
    done: trio.Event,
    flows: list[Flow],
    drain_timeout: float,
    task_status: trio.TaskStatus[ServerInfo] = trio.TASK_STATUS_IGNORED,
) -> None:
    with scope:
        await serve_flows(flows, port=0, drain_timeout=drain_timeout, task_status=task_status)
    done.set()


async def test_cancel_drains_live_calls(nursery: trio.Nursery) -> None:
    scope, stopped = trio.CancelScope(), trio.Event()
    info: ServerInfo = await nursery.start(
        functools.partial(_serve_in_scope, scope, stopped, [echo], 10.0)
    )
    url = await answer(info, ANSWER)
    async with plivo_socket(url) as ws:
        await ws.send_message(start_message("call-1"))
        assert sent_dtmf(await ws.get_message()) == "42"
        scope.cancel()
        await trio.sleep(0.05)
        # Still listening (status callbacks and reconnects of live calls), but not ready,
        # and a new answer webhook gets 503 (Plivo then uses the fallback answer URL).
        async with httpx.AsyncClient(base_url=info.url) as client:
            assert (await client.get("/readyz")).status_code == 503
            assert (await client.get("/healthz")).status_code == 503
            assert (await client.get("/livez")).status_code == 200
            assert (await client.post("/echo", data=ANSWER)).status_code == 503
        # The live call goes on.
        await ws.send_message(dtmf_message("3"))
        assert sent_dtmf(await ws.get_message()) == "3"
        assert not stopped.is_set()
        await ws.send_message(dtmf_message("#"))
        with trio.fail_after(5):
            await stopped.wait()  # the server stops as soon as its last call ends
    with pytest.raises(OSError, match="connect"):  # and then no longer listens
        await trio.open_tcp_stream("127.0.0.1", info.port)


async def test_drain_deadline_ends_calls(nursery: trio.Nursery) -> None:
    scope, stopped = trio.CancelScope(), trio.Event()
    info: ServerInfo = await nursery.start(
        functools.partial(_serve_in_scope, scope, stopped, [echo], 0.3)
    )
    url = await answer(info, ANSWER)
    async with plivo_socket(url) as ws:
        await ws.send_message(start_message("call-1"))
        assert sent_dtmf(await ws.get_message()) == "42"
        scope.cancel()
        with trio.fail_after(5):
            await stopped.wait()
            with pytest.raises(ConnectionClosed):
                await ws.get_message()


async def test_max_message_size_is_plivos() -> None:
    assert _app.MAX_MESSAGE_SIZE == 65536
    assert trio_websocket  # the client library the tests use


async def test_a_stream_connection_during_the_drain_is_served(nursery: trio.Nursery) -> None:
    # A call answered before the drain (or a reconnect of a live one) still gets its stream:
    # the listener stays open while live calls drain.
    scope, stopped = trio.CancelScope(), trio.Event()
    info: ServerInfo = await nursery.start(
        functools.partial(_serve_in_scope, scope, stopped, [echo], 10.0)
    )
    url = await answer(info, ANSWER)
    other = await answer(info, {**ANSWER, "CallUUID": "call-2"})
    async with plivo_socket(url) as ws:
        await ws.send_message(start_message("call-1"))
        assert sent_dtmf(await ws.get_message()) == "42"
        scope.cancel()
        await trio.sleep(0.05)
        async with plivo_socket(other) as late:
            await late.send_message(start_message("call-2"))
            with trio.fail_after(5):
                assert sent_dtmf(await late.get_message()) == "42"
            await late.send_message(dtmf_message("#"))
        await ws.send_message(dtmf_message("#"))
        with trio.fail_after(5):
            await stopped.wait()
