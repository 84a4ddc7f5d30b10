"""``callflow serve --workers 2``: one scrape of ``/metrics``, whichever worker answers it,
shows the calls of both workers (prometheus-client's multiprocess mode); with
``--log-format json`` every line of a call names the worker that ran it."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
import trio
from processkit import serve, write_worker_flows
from prometheus_client.parser import text_string_to_metric_families
from serverkit import dtmf_message, plivo_socket, sent_dtmf, start_message, stream_element

from callflow.server._handoff import owner_of

pytestmark = pytest.mark.e2e

WORKERS = 2


async def scrape_each(url: str) -> dict[int, dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    """``/metrics`` as answered by each worker: new connections until both have answered."""
    seen: dict[int, dict[tuple[str, frozenset[tuple[str, str]]], float]] = {}
    with trio.fail_after(10):
        while len(seen) < WORKERS:
            async with httpx.AsyncClient(base_url=url) as client:
                response = await client.get("/metrics")
            assert response.status_code == 200
            seen[int(response.headers["x-callflow-worker"])] = {
                (s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(response.text)
                for s in family.samples
            }
    return seen


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def test_one_scrape_shows_every_worker(tmp_path: Path) -> None:
    # three calls owned by each worker
    call_ids = [f"m-{i}" for i in range(40)]
    chosen = [c for c in call_ids if owner_of(c, WORKERS) == 0][:3]
    chosen += [c for c in call_ids if owner_of(c, WORKERS) == 1][:3]
    folder = write_worker_flows(tmp_path / "flows")
    async with (
        serve(folder, "--workers", str(WORKERS), "--log-format", "json") as served,
        AsyncExitStack() as stack,
    ):
        sockets = []
        for call_id in chosen:
            async with httpx.AsyncClient(base_url=served.url) as client:
                response = await client.post("/w", data={"CallUUID": call_id})
            assert response.status_code == 200, response.text
            ws = await stack.enter_async_context(
                plivo_socket(stream_element(response.content).text)
            )
            await ws.send_message(start_message(call_id))
            with trio.fail_after(10):
                assert int(sent_dtmf(await ws.get_message())) == owner_of(call_id, WORKERS)
            sockets.append(ws)
        during = await scrape_each(served.url)
        for samples in during.values():  # either worker's answer counts both workers' calls
            assert value(samples, "callflow_calls_active", flow="/w") == 6
        for ws in sockets:
            await ws.send_message(dtmf_message("#"))
        with trio.fail_after(10):
            while True:
                after = await scrape_each(served.url)
                counts = [
                    value(s, "callflow_calls_total", flow="/w", outcome="completed")
                    for s in after.values()
                ]
                if counts == [6] * WORKERS:
                    break
                await trio.sleep(0.1)
        for samples in after.values():
            assert value(samples, "callflow_calls_active", flow="/w") == 0
        entries = [json.loads(line) for line in served.log.splitlines() if line.startswith("{")]
    for call_id in chosen:
        lines = [e for e in entries if e.get("call_id") == call_id]
        assert all("worker" in e for e in lines)
        # the answer webhook may be any worker's; the call's run is its owner's
        ran = [e for e in lines if e["stream_id"] is not None]
        assert ran
        assert {e["worker"] for e in ran} == {owner_of(call_id, WORKERS)}
