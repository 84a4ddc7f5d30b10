"""``callflow serve --workers 2`` for real (subprocesses on 127.0.0.1): calls spread over
both workers, every connection of a call reaches the worker running its flow whichever
worker the kernel gave it to, a worker killed with SIGKILL loses only its own calls and is
restarted, and SIGTERM drains both."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio
import trio_websocket
from processkit import Served, serve, write_worker_flows
from serverkit import dtmf_message, plivo_socket, sent_dtmf, start_message, stream_element

from callflow.cli._stop import EXIT_OK
from callflow.server._handoff import owner_of

pytestmark = pytest.mark.e2e

WORKERS = 2


@pytest.fixture
def flows_dir(tmp_path: Path) -> Path:
    return write_worker_flows(tmp_path / "flows")


async def health_of_each(url: str) -> dict[int, dict[str, Any]]:
    """``/healthz`` of every worker: new connections until the kernel gave one to each."""
    seen: dict[int, dict[str, Any]] = {}
    with trio.fail_after(10):
        while len(seen) < WORKERS:
            async with httpx.AsyncClient(base_url=url) as client:
                response = await client.get("/healthz")
            body = response.json()
            assert response.headers["x-callflow-worker"] == str(body["worker"])
            seen[body["worker"]] = body
    return seen


class Caller:
    """One call: its answer XML's URLs and its open stream."""

    def __init__(self, call_id: str, stream_url: str, status_url: str) -> None:
        self.call_id = call_id
        self.stream_url = stream_url
        self.status_url = status_url
        self.ws: trio_websocket.WebSocketConnection | None = None
        self.worker = -1

    async def key(self, digit: str) -> str:
        assert self.ws is not None
        await self.ws.send_message(dtmf_message(digit))
        return sent_dtmf(await self.ws.get_message())


async def place_calls(
    url: str, stack: AsyncExitStack, count: int, prefix: str = "call"
) -> list[Caller]:
    callers = []
    for i in range(count):
        call_id = f"{prefix}-{i}"
        async with httpx.AsyncClient(base_url=url) as client:  # lands on any worker
            response = await client.post("/w", data={"CallUUID": call_id, "Direction": "inbound"})
        assert response.status_code == 200, response.text
        stream = stream_element(response.content)
        caller = Caller(call_id, stream.text or "", stream.get("statusCallbackUrl") or "")
        caller.ws = await stack.enter_async_context(plivo_socket(caller.stream_url))
        await caller.ws.send_message(start_message(call_id))
        with trio.fail_after(10):
            caller.worker = int(sent_dtmf(await caller.ws.get_message()))
        callers.append(caller)
    return callers


@pytest.fixture
async def served(flows_dir: Path) -> AsyncIterator[Served]:
    async with serve(flows_dir, "--workers", str(WORKERS), "--drain-timeout", "20") as running:
        yield running


async def test_calls_spread_and_every_connection_reaches_the_owner(served: Served) -> None:
    async with AsyncExitStack() as stack:
        callers = await place_calls(served.url, stack, 20)
        # Each flow runs in the worker its call id hashes to; both workers have calls.
        assert [c.worker for c in callers] == [owner_of(c.call_id, WORKERS) for c in callers]
        assert {c.worker for c in callers} == set(range(WORKERS))
        health = await health_of_each(served.url)
        assert sorted(h["calls"] for h in health.values()) == sorted(
            [sum(c.worker == w for c in callers) for w in range(WORKERS)]
        )
        # The kernel gave some streams to the worker that does not own them: handed over.
        assert sum(h["handoffs"]["received"] for h in health.values()) >= 1

        for caller in callers[:6]:
            # A status callback, on a new connection each time (so either worker accepts it),
            # reaches the flow: its URL names the call.
            assert caller.ws is not None
            assert "CallUUID=" in caller.status_url
            await caller.ws.send_message(dtmf_message("*"))
            async with httpx.AsyncClient() as client:
                reply = await client.post(
                    caller.status_url, data={"CallUUID": caller.call_id, "Event": "StopStream"}
                )
            assert reply.status_code == 200
            with trio.fail_after(10):
                assert sent_dtmf(await caller.ws.get_message()) == str(caller.worker)
        # Machine detection names the call only in its form body: still the owner's.
        for caller in callers[6:10]:
            assert caller.ws is not None
            await caller.ws.send_message(dtmf_message("A"))
            base = urlsplit(caller.status_url)
            async with httpx.AsyncClient() as client:
                reply = await client.post(
                    f"{base.scheme}://{base.netloc}/w/machine",
                    data={"CallUUID": caller.call_id, "Machine": "true"},
                )
            assert reply.status_code == 200
            with trio.fail_after(10):
                assert sent_dtmf(await caller.ws.get_message()) == str(caller.worker)

        # SIGTERM drains both workers; calls that end in time end on their own.
        served.process.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            while True:
                states = {h["status"] for h in (await health_of_each(served.url)).values()}
                if states == {"draining"}:
                    break
        for caller in callers:
            assert caller.ws is not None
            await caller.ws.send_message(dtmf_message("#"))
        with trio.fail_after(20):
            status = await served.wait_exit()
    assert status == EXIT_OK, served.log
    assert "died" not in served.log  # no worker stopped or was restarted on its own
    assert " ERROR " not in served.log
    assert "Traceback" not in served.log


async def test_a_killed_worker_loses_only_its_calls_and_is_restarted(served: Served) -> None:
    async with AsyncExitStack() as stack:
        callers = await place_calls(served.url, stack, 12)
        victim = 1
        before = await health_of_each(served.url)
        os.kill(before[victim]["pid"], signal.SIGKILL)
        for caller in callers:
            if caller.worker == victim:
                with pytest.raises(trio_websocket.ConnectionClosed), trio.fail_after(10):
                    await caller.key("5")
            else:  # the other worker's calls go on
                with trio.fail_after(10):
                    assert await caller.key("5") == str(caller.worker)
        with trio.fail_after(15):
            await served.wait_log(f"worker {victim} (pid {before[victim]['pid']}) died")
            while True:
                after = await health_of_each(served.url)
                if after[victim]["pid"] != before[victim]["pid"]:
                    break
                await trio.sleep(0.2)
        assert after[1 - victim]["pid"] == before[1 - victim]["pid"]
        # The restarted worker takes new calls of its own.
        await trio.sleep(11)  # longer than trio's idle thread cache: workers stay up
        fresh = await place_calls(served.url, stack, 6, prefix="fresh")
        assert {c.worker for c in fresh} == set(range(WORKERS))
        for caller in fresh:
            with trio.fail_after(10):
                assert await caller.key("7") == str(caller.worker)
    assert served.log.count("died with status") == 1, served.log


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.startswith("State:") and "Z" in line for line in f)
    except FileNotFoundError:
        return True


async def test_workers_drain_and_exit_when_the_supervisor_dies(served: Served) -> None:
    pids = [h["pid"] for h in (await health_of_each(served.url)).values()]
    os.kill(served.process.pid, signal.SIGKILL)
    with trio.fail_after(10):
        while True:  # polled: a process that is not our child has no event to wait on
            if all(_gone(pid) for pid in pids):
                break
            await trio.sleep(0.1)
