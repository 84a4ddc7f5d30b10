"""Graceful drain of the real ``callflow serve`` (a subprocess on 127.0.0.1): readiness,
the drain answer, calls that end on their own, stuck calls and the hard deadline, and a
second signal."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import pytest
import trio
import trio_websocket
from lxml import etree
from processkit import DeafPeer, Served, serve, write_drain_flows
from serverkit import dtmf_message, plivo_socket, sent_dtmf, start_message, stream_element

from callflow.cli._stop import EXIT_DRAIN_DEADLINE, EXIT_FORCED, EXIT_HARD_DEADLINE, EXIT_OK
from callflow.server._drain import HARD_DEADLINE, DrainAnswer

pytestmark = pytest.mark.e2e


@pytest.fixture
def flows_dir(tmp_path: Path) -> Path:
    return write_drain_flows(tmp_path / "flows")


def answer_params(call_id: str) -> dict[str, str]:
    return {"CallUUID": call_id, "From": "+15550100", "To": "+15550199", "Direction": "inbound"}


async def stream_url(client: httpx.AsyncClient, path: str, call_id: str) -> str:
    response = await client.post(path, data=answer_params(call_id))
    assert response.status_code == 200, response.text
    return stream_element(response.content).text or ""


async def _exit_within(served: Served, seconds: float) -> int:
    with trio.fail_after(seconds):
        return await served.wait_exit()


def error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if " ERROR " in line or "Traceback" in line]


async def run_waiting_call(
    url: str,
    call_id: str,
    connected: trio.Semaphore,
    release: trio.Event,
    ended: list[str],
) -> None:
    """One caller on /wait: starts, hears the flow's first key, waits for ``release``,
    presses ``#`` and waits for the server to close the socket."""
    async with plivo_socket(url) as ws:
        await ws.send_message(start_message(call_id))
        assert sent_dtmf(await ws.get_message()) == "1"
        connected.release()
        await release.wait()
        await ws.send_message(dtmf_message("#"))
        with pytest.raises(trio_websocket.ConnectionClosed) as closed:
            with trio.fail_after(5):
                await ws.get_message()
        assert closed.value.reason is not None
        assert closed.value.reason.code == 1000
        ended.append(call_id)


async def test_sigterm_with_20_live_calls_drains_them_all(flows_dir: Path) -> None:
    calls = 20
    async with serve(
        flows_dir, "--drain-timeout", "20", "--drain-answer", "speak:Please call again later."
    ) as served:
        connected, release, ended = trio.Semaphore(0), trio.Event(), []
        async with httpx.AsyncClient(base_url=served.url) as client:
            assert (await client.get("/readyz")).status_code == 200
            async with trio.open_nursery() as nursery:
                for i in range(calls):
                    url = await stream_url(client, "/wait", f"call-{i}")
                    nursery.start_soon(
                        run_waiting_call, url, f"call-{i}", connected, release, ended
                    )
                for _ in range(calls):
                    with trio.fail_after(10):
                        await connected.acquire()
                assert (await client.get("/healthz")).json()["calls"] == calls

                served.process.send_signal(signal.SIGTERM)
                sent = time.monotonic()
                while (await client.get("/readyz")).status_code != 503:
                    assert time.monotonic() - sent < 1.0
                not_ready_after = time.monotonic() - sent
                assert not_ready_after < 0.1, f"/readyz still 200 {not_ready_after:.3f} s after"
                assert (await client.get("/livez")).status_code == 200
                health = await client.get("/healthz")  # the alias of /readyz
                assert health.status_code == 503
                assert health.json()["status"] == "draining"

                # A new call gets the configured drain answer, not a stream.
                new = await client.post("/wait", data=answer_params("call-new"))
                assert new.status_code == 200
                root = etree.fromstring(new.content)
                assert [child.tag for child in root] == ["Speak", "Hangup"]
                assert root[0].text == "Please call again later."
                # Status callbacks of live calls are still served during the drain.
                status = await client.post(
                    "/wait/status", data={"CallUUID": "call-3", "Event": "StartStream"}
                )
                assert status.status_code == 200

                release.set()  # every caller presses # and its call ends on its own
        status_code = await _exit_within(served, 10)
    assert status_code == EXIT_OK, served.log
    assert sorted(ended) == sorted(f"call-{i}" for i in range(calls))
    assert error_lines(served.log) == []
    assert "CallEnded reason=drained" not in served.log
    assert "0 ended by its deadline, 0 cut" in served.log


async def test_drain_deadline_ends_a_call_with_drained_and_runs_finally(flows_dir: Path) -> None:
    async with serve(flows_dir, "--drain-timeout", "2") as served:
        async with httpx.AsyncClient(base_url=served.url) as client:
            url = await stream_url(client, "/wait", "call-late")
            assert (await client.post("/wait", data=answer_params("x"))).status_code == 200
        async with plivo_socket(url) as ws:
            await ws.send_message(start_message("call-late"))
            assert sent_dtmf(await ws.get_message()) == "1"
            served.process.send_signal(signal.SIGTERM)
            async with httpx.AsyncClient(base_url=served.url) as client:
                with trio.fail_after(10):
                    await served.wait_log("draining 1 live call(s)")
                refused = await client.post("/wait", data=answer_params("call-new"))
            assert refused.status_code == 503  # the default: Plivo uses the fallback URL
            with pytest.raises(trio_websocket.ConnectionClosed):
                with trio.fail_after(10):
                    await ws.get_message()
            status_code = await _exit_within(served, 10)
    assert status_code == EXIT_DRAIN_DEADLINE, served.log
    assert "flow /wait call-late saw CallEnded reason=drained" in served.log
    assert "flow /wait call-late finally ran" in served.log
    assert error_lines(served.log) == []


async def _sigterm_exit_time(served: Served, drain_timeout: float) -> tuple[int, float]:
    served.process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    status_code = await _exit_within(served, drain_timeout + HARD_DEADLINE + 5)
    return status_code, time.monotonic() - sent


async def test_a_peer_that_never_reads_cannot_hold_the_shutdown(flows_dir: Path) -> None:
    drain_timeout = 1.0
    async with serve(flows_dir, "--drain-timeout", str(drain_timeout)) as served:
        async with httpx.AsyncClient(base_url=served.url) as client:
            url = await stream_url(client, "/flood", "call-deaf")
        peer = DeafPeer(url)
        try:
            assert peer.send_text(start_message("call-deaf"))
            await trio.sleep(1.0)  # the flow fills the socket; the peer reads nothing
            async with trio.open_nursery() as nursery:

                async def keep_sending() -> None:
                    media = json.dumps({"event": "media", "media": {"payload": "//8="}})
                    sending = True
                    while sending:
                        sending = peer.send_text(media)
                        await trio.sleep(0.02)

                nursery.start_soon(keep_sending)
                status_code, took = await _sigterm_exit_time(served, drain_timeout)
                nursery.cancel_scope.cancel()
        finally:
            peer.close()
    assert took < drain_timeout + HARD_DEADLINE, served.log
    assert status_code == EXIT_DRAIN_DEADLINE, served.log
    assert "socket cut" in served.log


async def test_a_flow_sleeping_shielded_cannot_hold_the_shutdown(flows_dir: Path) -> None:
    drain_timeout = 1.0
    async with serve(flows_dir, "--drain-timeout", str(drain_timeout)) as served:
        async with httpx.AsyncClient(base_url=served.url) as client:
            url = await stream_url(client, "/stuck", "call-stuck")
        async with plivo_socket(url) as ws:
            await ws.send_message(start_message("call-stuck"))
            assert sent_dtmf(await ws.get_message()) == "1"
            status_code, took = await _sigterm_exit_time(served, drain_timeout)
    assert took < drain_timeout + HARD_DEADLINE + 0.5, served.log
    assert status_code == EXIT_HARD_DEADLINE, served.log
    assert served.log.splitlines()[-1].startswith("callflow: hard deadline: 1 call(s)")
    assert "Traceback" not in served.log


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
async def test_a_second_signal_exits_at_once_with_one_line(
    flows_dir: Path, second: signal.Signals
) -> None:
    async with serve(flows_dir, "--drain-timeout", "30") as served:
        async with httpx.AsyncClient(base_url=served.url) as client:
            url = await stream_url(client, "/wait", "call-1")
        async with plivo_socket(url) as ws:
            await ws.send_message(start_message("call-1"))
            assert sent_dtmf(await ws.get_message()) == "1"
            served.process.send_signal(signal.SIGINT)
            with trio.fail_after(10):
                await served.wait_log("draining 1 live call(s)")
            served.process.send_signal(second)
            sent = time.monotonic()
            status_code = await _exit_within(served, 5)
            took = time.monotonic() - sent
    assert status_code == EXIT_FORCED
    assert took < 1.0
    last = served.log.splitlines()[-1]
    assert (
        last == f"callflow: second {second.name} during the drain: exiting now, 1 live call(s) cut"
    )
    assert "Traceback" not in served.log
    assert "KeyboardInterrupt" not in served.log


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("503", DrainAnswer()),
        ("speak:Back soon", DrainAnswer("speak", text="Back soon")),
        (
            "redirect:https://other.example/answer",
            DrainAnswer("redirect", url="https://other.example/answer"),
        ),
    ],
)
def test_drain_answer_forms(spec: str, expected: DrainAnswer) -> None:
    assert DrainAnswer.parse(spec) == expected


def test_drain_answer_redirect_xml() -> None:
    status, body, content_type = DrainAnswer.parse(
        "redirect:https://b.example/a?x=1&y=2"
    ).response()
    assert (status, content_type) == (200, "application/xml")
    root = etree.fromstring(body)
    assert root.tag == "Response"
    assert [(c.tag, c.text, c.get("method")) for c in root] == [
        ("Redirect", "https://b.example/a?x=1&y=2", "POST")
    ]


@pytest.mark.parametrize("spec", ["", "404", "speak:", "speak:  ", "redirect:ftp://x", "hangup"])
def test_drain_answer_refuses_other_forms(spec: str) -> None:
    with pytest.raises(ValueError, match=r"speak|redirect|expected"):
        DrainAnswer.parse(spec)
