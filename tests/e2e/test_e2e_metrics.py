"""``GET /metrics`` on the real server (127.0.0.1): read with prometheus-client's own parser,
every metric is there, and each moves as this test's calls run (a barge-in, a hang-up, a flow
that raises, unreadable messages, refused webhooks and streams, a call cut by the drain; log
lines held back by the rate limit, a message over 64 KB, a replayed webhook, a flow that
blocks the loop, a connection over the cap). The reconnect metrics move in tests/deploy."""

from __future__ import annotations

import functools
import time
from contextlib import AsyncExitStack

import httpx
import pytest
import trio
from e2ekit import AUTH_TOKEN, FLOWS
from prometheus_client.parser import text_string_to_metric_families

from callflow import Call, Format, flow, load_flows
from callflow.protocol import ClearAudio
from callflow.server import ServerInfo, _conncap, serve_flows, signature_v3
from callflow.testing import AnswerError, dial, open_plivo_websocket
from flows.support import PROMPTS

pytestmark = pytest.mark.e2e

FAMILIES = {
    "callflow_calls_active": "gauge",
    "callflow_calls": "counter",
    "callflow_flow_exceptions": "counter",
    "callflow_protocol_errors": "counter",
    "callflow_reconnects": "counter",
    "callflow_reattaches": "counter",
    "callflow_detaches": "counter",
    "callflow_detaches_expired": "counter",
    "callflow_detach_gap_seconds": "histogram",
    "callflow_barge_in_latency_seconds": "histogram",
    "callflow_time_to_first_audio_seconds": "histogram",
    "callflow_answer_to_start_seconds": "histogram",
    "callflow_checkpoint_round_trip_seconds": "histogram",
    "callflow_log_lines_suppressed": "counter",
    "callflow_webhook_replays_refused": "counter",
    "callflow_connections_refused": "counter",
    "callflow_event_loop_stalls": "counter",
    "callflow_messages_dropped": "counter",
    "callflow_liveness_timeouts": "counter",
}


class Boom(Exception):
    pass


@flow("/metrics-boom", format=Format.MULAW_8K)
async def boom(call: Call) -> None:
    await call.say(PROMPTS.goodbye)
    raise Boom("on purpose")


@flow("/metrics-wait", format=Format.MULAW_8K)
async def wait_forever(call: Call) -> None:
    while True:
        await call.wait_dtmf()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(info: ServerInfo) -> tuple[Samples, dict[str, str]]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        response = await client.get(f"{info.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    types = {}
    for family in text_string_to_metric_families(response.text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, types


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def test_metrics_are_exported_and_move_with_calls(nursery: trio.Nursery) -> None:
    flows = [*load_flows(FLOWS), boom, wait_forever]
    info: ServerInfo = await nursery.start(
        functools.partial(
            serve_flows, flows, host="127.0.0.1", port=0, auth_token=AUTH_TOKEN, drain_timeout=1.0
        )
    )
    before, types = await scrape(info)
    assert {name: types.get(name) for name in FAMILIES} == FAMILIES

    with trio.fail_after(60):
        # 1. the menu: first audio, checkpoints, a barge-in by key, completed
        async with dial(f"{info.url}/support", auth_token=AUTH_TOKEN) as caller:
            await caller.hears(PROMPTS.welcome)
            mid, _ = await scrape(info)
            await trio.sleep(0.3)
            await caller.press("1")
            await caller.wait_for(ClearAudio)
            caller.skip_heard()  # the part of the menu prompt heard before the key
            await caller.send_raw("{not json")  # unreadable
            await caller.send_raw('{"event": "surprise"}')  # unknown event
            await caller.hears(PROMPTS.sales)
            await caller.hears(PROMPTS.goodbye)
            assert await caller.hung_up() == 1000
        # 2. the caller hangs up mid-prompt
        async with dial(f"{info.url}/support", auth_token=AUTH_TOKEN) as caller:
            await trio.sleep(0.2)
            await caller.hang_up()
        # 3. a flow that raises
        async with dial(f"{info.url}/metrics-boom", auth_token=AUTH_TOKEN) as caller:
            await caller.hung_up()
        # 4. refusals: an answer with a bad signature, a stream with a bad token
        with pytest.raises(AnswerError):
            async with dial(f"{info.url}/support", auth_token="not the token"):
                pass
        ws = info.url.replace("http://", "ws://")
        with pytest.raises(Exception, match="403"):
            async with open_plivo_websocket(f"{ws}/support/stream?t=forged.token"):
                pass
        await trio.sleep(0.2)  # let the server finish counting the ended calls

    after, _ = await scrape(info)
    sup = {"flow": "/support"}
    assert (
        value(mid, "callflow_calls_active", **sup) - value(before, "callflow_calls_active", **sup)
        == 1
    )
    assert value(after, "callflow_calls_active", **sup) == value(
        before, "callflow_calls_active", **sup
    )

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("callflow_calls_total", outcome="completed", **sup) == 1
    assert moved("callflow_calls_total", outcome="hung_up", **sup) == 1
    assert moved("callflow_calls_total", outcome="refused", **sup) == 2
    assert moved("callflow_calls_total", outcome="flow_error", flow="/metrics-boom") == 1
    assert moved("callflow_flow_exceptions_total", flow="/metrics-boom", exception="Boom") == 1
    assert moved("callflow_protocol_errors_total", kind="unreadable", **sup) == 1
    assert moved("callflow_protocol_errors_total", kind="unknown_event", **sup) == 1
    assert moved("callflow_barge_in_latency_seconds_count", trigger="dtmf", **sup) == 1
    # a barge-in is answered in a scheduler pass or two: well inside the 0.25 s bucket
    assert moved("callflow_barge_in_latency_seconds_bucket", trigger="dtmf", le="0.25", **sup) == 1
    assert moved("callflow_time_to_first_audio_seconds_count", **sup) == 2
    assert moved("callflow_answer_to_start_seconds_count", **sup) == 2
    assert moved("callflow_answer_to_start_seconds_sum", **sup) > 0
    assert moved("callflow_checkpoint_round_trip_seconds_count", **sup) >= 3
    # round trips include playing the audio: their sum is at least the prompts heard
    assert moved("callflow_checkpoint_round_trip_seconds_sum", **sup) >= PROMPTS.sales.duration_s

    # 5. the drain deadline cuts a call that would never end: outcome "drained"
    other_scope = trio.CancelScope()

    async def serve_other(task_status: trio.TaskStatus[ServerInfo]) -> None:
        with other_scope:
            await serve_flows(
                flows,
                host="127.0.0.1",
                port=0,
                auth_token=AUTH_TOKEN,
                drain_timeout=3.0,
                task_status=task_status,
            )

    other: ServerInfo = await nursery.start(serve_other)
    with trio.fail_after(30):
        async with dial(f"{other.url}/metrics-wait", auth_token=AUTH_TOKEN) as caller:
            await caller.press("5")
            await trio.sleep(0.2)
            other_scope.cancel()  # what SIGTERM does in `callflow serve`
            await trio.sleep(0.1)
            with pytest.raises(AnswerError, match="503"):  # a new call while it drains
                async with dial(f"{other.url}/metrics-wait", auth_token=AUTH_TOKEN):
                    pass
            await caller.hung_up()
        await trio.sleep(0.2)
    drained, _ = await scrape(info)
    assert (
        value(drained, "callflow_calls_total", outcome="drained", flow="/metrics-wait")
        - value(before, "callflow_calls_total", outcome="drained", flow="/metrics-wait")
        == 1
    )
    assert (
        value(drained, "callflow_calls_total", outcome="refused", flow="/metrics-wait")
        - value(before, "callflow_calls_total", outcome="refused", flow="/metrics-wait")
        == 1
    )


@flow("/metrics-block", format=Format.MULAW_8K)
async def block(call: Call) -> None:
    time.sleep(0.8)  # noqa: ASYNC251  (on purpose: a flow that blocks the event loop)
    await call.say(PROMPTS.goodbye)


async def test_the_hardening_metrics_move(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    flows = [*load_flows(FLOWS), wait_forever, block]
    info: ServerInfo = await nursery.start(
        functools.partial(
            serve_flows,
            flows,
            host="127.0.0.1",
            port=0,
            auth_token=AUTH_TOKEN,
            loop_stall_threshold=0.3,
        )
    )
    before, _ = await scrape(info)
    with trio.fail_after(60):
        # unreadable messages past the rate limit: counted, their log lines held back
        async with dial(f"{info.url}/metrics-wait", auth_token=AUTH_TOKEN) as caller:
            for n in range(15):
                await caller.send_raw(f"garbage {n}")
            await caller.press("1")  # after the garbage: the call still reads
            await trio.sleep(0.2)
            # a message over 64 KB: dropped, and the socket closed with 1009
            await caller.send_raw("x" * 70_000)
            await caller.hung_up()
        # a signed webhook replayed with the same nonce and signature
        url = f"{info.url}/metrics-wait"
        form = {"CallUUID": "replayed-call", "Direction": "inbound"}
        nonce = "nonce-for-the-replay-test"
        headers = {
            "X-Plivo-Signature-V3-Nonce": nonce,
            "X-Plivo-Signature-V3": signature_v3(
                AUTH_TOKEN,
                method="POST",
                url=url,
                params={k: [v] for k, v in form.items()},
                nonce=nonce,
            ),
        }
        async with httpx.AsyncClient(timeout=10.0) as client:
            assert (await client.post(url, data=form, headers=headers)).status_code == 200
            assert (await client.post(url, data=form, headers=headers)).status_code == 403
        # a flow that blocks the event loop past the watchdog's threshold
        async with dial(f"{info.url}/metrics-block", auth_token=AUTH_TOKEN) as caller:
            await caller.hung_up()
        # a server at its connection cap with nothing to evict: the next connection is refused
        monkeypatch.setattr(_conncap, "descriptor_limit", lambda: _conncap.RESERVED_FDS + 8)
        capped: ServerInfo = await nursery.start(
            functools.partial(serve_flows, flows, host="127.0.0.1", port=0, auth_token=AUTH_TOKEN)
        )
        async with AsyncExitStack() as stack:
            for _ in range(8):  # live calls fill every place
                await stack.enter_async_context(
                    dial(f"{capped.url}/metrics-wait", auth_token=AUTH_TOKEN, send_media=False)
                )
            async with httpx.AsyncClient(timeout=10.0) as client:
                assert (await client.get(f"{capped.url}/metrics")).status_code == 503
    after, _ = await scrape(info)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    wait = {"flow": "/metrics-wait"}
    assert moved("callflow_protocol_errors_total", kind="unreadable", **wait) == 15
    assert moved("callflow_log_lines_suppressed_total", kind="unreadable") >= 1
    assert moved("callflow_protocol_errors_total", kind="too_big", **wait) == 1
    assert moved("callflow_messages_dropped_total", reason="too_big") == 1
    assert moved("callflow_webhook_replays_refused_total", kind="answer") == 1
    assert moved("callflow_event_loop_stalls_total") >= 1
    assert moved("callflow_connections_refused_total") == 1
