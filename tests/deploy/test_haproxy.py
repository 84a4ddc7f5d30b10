"""HAProxy, with the shipped deploy/haproxy.cfg, in front of three ``callflow serve``
processes on 127.0.0.1: calls spread over the hosts and every request of one call reaches one
host; a host drained with SIGTERM mid-run loses no call; a stream dropped mid-prompt and
re-opened through HAProxy resumes the same flow on the same host."""

from __future__ import annotations

import collections
import time
import uuid

import httpx
import pytest
import trio
from lbflows.lb import PROMPTS
from lbkit import AUTH_TOKEN, DRAIN_TIMEOUT_S, HAProxy, Host, RawStream, answer, audio_bytes
from prometheus_client.parser import text_string_to_metric_families

from callflow.protocol import Format
from callflow.testing import FakePlivo, dial

pytestmark = pytest.mark.e2e


async def metric(host: Host, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples on ``host``'s /metrics whose labels include ``labels``."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        text = (await client.get(f"{host.url}/metrics")).text
    wanted = set(labels.items())
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and wanted <= set(s.labels.items())
    )


async def call_through(lb: HAProxy, path: str, done: list[FakePlivo]) -> None:
    """One whole call of ``path`` through HAProxy: every prompt heard, ended by the flow."""
    async with dial(f"{lb.url}{path}", auth_token=AUTH_TOKEN) as caller:
        if path == "/lb/long":
            await caller.hears(PROMPTS.menu)
        await caller.hears(PROMPTS.goodbye)
        # callflow ended it (the close code itself is checked by the hosts' outcome counts:
        # the test client sometimes misses the close frame of a server that closes at once)
        await caller.hung_up()
    done.append(caller)


def hosts_of(hosts: list[Host]) -> dict[str, set[str]]:
    """call id -> names of the hosts whose logs mention it."""
    seen: dict[str, set[str]] = collections.defaultdict(set)
    for host in hosts:
        for call_id in host.call_ids():
            seen[call_id].add(host.name)
    return seen


async def test_calls_spread_over_the_hosts_and_each_stays_on_one(
    haproxy: HAProxy, hosts: list[Host]
) -> None:
    done: list[FakePlivo] = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for _ in range(24):
                nursery.start_soon(call_through, haproxy, "/lb/short", done)
    assert len(done) == 24
    where = hosts_of(hosts)
    for caller in done:
        # the answer webhook and the stream of each call were served by one host
        assert len(where[caller.call_id]) == 1, (caller.call_id, where[caller.call_id])
    per_host = collections.Counter(next(iter(where[c.call_id])) for c in done)
    assert set(per_host) == {h.name for h in hosts}, per_host
    for host in hosts:
        completed = await metric(
            host, "callflow_calls_total", flow="/lb/short", outcome="completed"
        )
        assert completed == per_host[host.name]
        answered = [
            e
            for e in host.log_entries()
            if e["logger"] == "callflow.server" and " answer " in str(e["message"])
        ]
        assert len(answered) == per_host[host.name]


async def test_a_host_drained_mid_run_loses_no_call(haproxy: HAProxy, hosts: list[Host]) -> None:
    done: list[FakePlivo] = []
    with trio.fail_after(DRAIN_TIMEOUT_S + 40):
        async with trio.open_nursery() as nursery:
            for _ in range(9):
                nursery.start_soon(call_through, haproxy, "/lb/long", done)
            await trio.sleep(1.5)  # every call is mid-prompt now
            active = {h.name: await metric(h, "callflow_calls_active") for h in hosts}
            assert sum(active.values()) == 9
            drained = max(hosts, key=lambda h: active[h.name])
            assert active[drained.name] >= 1
            before_drain = drained.call_ids()
            drained.terminate()
            # new calls keep coming while it drains: none is lost, none lands on it
            for _ in range(9):
                nursery.start_soon(call_through, haproxy, "/lb/long", done)
                await trio.sleep(0.1)
        assert len(done) == 18  # every call heard all of its prompts and ended normally
        exit_status = await trio.to_thread.run_sync(drained.process.wait)
    assert exit_status == 0, drained.log_tail()  # every call on it ended on its own
    # no new call ran there: an answer that reached it in the moment before HAProxy's check
    # saw /readyz 503 was refused with 503 and retried on another host
    ran_there = {e["call_id"] for e in drained.log_entries() if e.get("stream_id")}
    assert ran_there <= before_drain
    for entry in drained.log_entries():
        if entry.get("call_id") and entry["call_id"] not in before_drain:
            assert "draining, so no new call here" in str(entry["message"])
    assert not [e for e in drained.log_entries() if e["level"] in ("ERROR", "CRITICAL")]


def metric_now(host: Host, name: str, **labels: str) -> float:
    """:func:`metric`, blocking."""
    text = httpx.get(f"{host.url}/metrics", timeout=5.0).text
    wanted = set(labels.items())
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and wanted <= set(s.labels.items())
    )


CHUNK_BYTES = 16384 * 3 // 4
"""The longest ``playAudio`` chunk: 16 KB of base64 is 12 KB of 8 kHz μ-law (1.5 s)."""
MULAW_8K = Format.MULAW_8K


def drop_after_first_checkpoint(stream: RawStream) -> bytes:
    """Play until the first checkpoint (ack it), press ``1``, cut the link; audio heard."""
    heard = b""
    while (message := stream.next_command()) is not None:
        if message["event"] == "playAudio":
            heard += audio_bytes(message)
        elif message["event"] == "checkpoint":
            stream.ack(str(message["name"]))
            break
    stream.press("1")  # a key pressed before the cut: it must still choose "sales"
    time.sleep(0.3)
    stream.reset()  # TCP reset, no close frame
    return heard


def play_to_the_end(stream: RawStream) -> bytes:
    """Ack every checkpoint until callflow closes the stream; the audio received."""
    received = b""
    while (message := stream.next_command()) is not None:
        if message["event"] == "playAudio":
            received += audio_bytes(message)
        elif message["event"] == "checkpoint":
            stream.ack(str(message["name"]))
    return received


def test_a_stream_dropped_mid_prompt_resumes_its_flow_through_haproxy(
    haproxy: HAProxy, hosts: list[Host]
) -> None:
    call_id = str(uuid.uuid4())
    url = answer(f"{haproxy.url}/lb/resume", call_id)
    with RawStream(url, call_id) as first:
        heard = drop_after_first_checkpoint(first)
    menu, sales = (PROMPTS.menu.encoded(MULAW_8K), PROMPTS.sales.encoded(MULAW_8K))
    assert 0 < len(heard) <= len(menu) - 8000  # cut mid-prompt
    assert menu.startswith(heard)
    time.sleep(2.0)  # Plivo retries the same URL about two seconds later
    with RawStream(url, call_id) as second:
        after = play_to_the_end(second)
        assert second.close_code == 1000  # the flow ended normally
    # the caller hears the unheard rest of the prompt (to within one chunk), then sales: not
    # the prompt from its start (a new flow), not goodbye (the key lost)
    assert after.endswith(sales)
    rest = after[: -len(sales)]
    assert menu.endswith(rest)
    # (callflow reckons what was heard from the last ack plus the time played since)
    assert abs(len(rest) - (len(menu) - len(heard))) <= CHUNK_BYTES
    ran = [h for h in hosts if call_id in h.call_ids()]
    assert len(ran) == 1  # answer, stream and its retry: one host
    host = ran[0]
    assert metric_now(host, "callflow_detaches_total", flow="/lb/resume") == 1
    assert metric_now(host, "callflow_reconnects_total", flow="/lb/resume") == 1
    assert metric_now(host, "callflow_reattaches_total", flow="/lb/resume") == 1
    assert metric_now(host, "callflow_detach_gap_seconds_count", flow="/lb/resume") == 1
    assert metric_now(host, "callflow_calls_total", flow="/lb/resume", outcome="completed") == 1
    assert metric_now(host, "callflow_calls_total", flow="/lb/resume") == 1
    messages = [str(e["message"]) for e in host.log_entries() if e.get("call_id") == call_id]
    assert len([m for m in messages if " detached: " in m]) == 1
    assert len([m for m in messages if " re-attached after " in m]) == 1


def test_a_dropped_stream_with_no_retry_ends_after_the_window(
    haproxy: HAProxy, hosts: list[Host]
) -> None:
    call_id = str(uuid.uuid4())
    url = answer(f"{haproxy.url}/lb/resume", call_id)
    with RawStream(url, call_id) as stream:
        drop_after_first_checkpoint(stream)
    (host,) = [h for h in hosts if call_id in h.call_ids()]
    deadline = time.monotonic() + 30  # the reconnect window (10 s by default) and then some
    while metric_now(host, "callflow_detaches_expired_total", flow="/lb/resume") < 1:
        assert time.monotonic() < deadline, "the detached call never expired"
        time.sleep(0.2)
    assert metric_now(host, "callflow_detaches_total", flow="/lb/resume") == 1
    assert metric_now(host, "callflow_reattaches_total", flow="/lb/resume") == 0
    while metric_now(host, "callflow_calls_active", flow="/lb/resume") > 0:
        assert time.monotonic() < deadline, "the call never ended"
        time.sleep(0.2)
    assert metric_now(host, "callflow_calls_total", flow="/lb/resume", outcome="completed") == 0
