"""A playback whose checkpoints Plivo never acks ends its wait (``RuntimeConfig.ack_grace_s``).

Plivo's side is written by hand on the in-memory transport: it reads every command and
answers none (no ``playedStream``, no ``clearedAudio``), as a peer that stopped playing our
audio would. Virtual time (autojump clock), so the bounds are exact. Each wait is bounded
either with ``trio.move_on_at`` (a call run on its own) or by the server's sweeper
(``PhaseTimeouts.wait_until``: ``run_call(timeouts=)``); both are run.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import pytest
import trio
import trio.testing

from callflow import Call, Flow, Format, Playback, RuntimeConfig, flow
from callflow.audio import beep
from callflow.observe import METRICS
from callflow.protocol import Start, encode_event
from callflow.runtime import Transport, TransportClosed, memory_transport_pair, run_call
from callflow.runtime._config import MIN_LEAD_S
from callflow.runtime._timeouts import PhaseTimeouts
from callflow.testing import FakePlivo

TONE = beep(2.0, freq_hz=440, rate=8000)
CHUNK_S = MIN_LEAD_S  # the longest μ-law playAudio chunk: 1.52 s

Sent = list[tuple[float, dict[str, Any]]]


async def _deaf_plivo(plivo: Transport, sent: Sent) -> None:
    """Plivo's side: reads everything, answers nothing, until the stream closes."""
    with contextlib.suppress(TransportClosed):
        while True:
            message = json.loads(await plivo.receive())
            sent.append((trio.current_time(), message))


@pytest.fixture(params=["move_on_at", "sweeper"])
def bound_by(request: pytest.FixtureRequest) -> str:
    """What bounds the waits for acks: a deadline per wait, or the server's sweeper."""
    return str(request.param)


async def _run(flow_: Flow, bound_by: str, config: RuntimeConfig | None = None) -> Sent:
    plivo, server = memory_transport_pair()
    start = Start(
        call_id="call-deaf",
        stream_id="s",
        account_id="a",
        tracks=("inbound",),
        encoding="audio/x-mulaw",
        sample_rate=8000,
    )
    await plivo.send(encode_event(start))
    sent: Sent = []
    async with trio.open_nursery() as nursery:
        timeouts = None
        if bound_by == "sweeper":
            timeouts = PhaseTimeouts()
            await nursery.start(timeouts.run)
        nursery.start_soon(_deaf_plivo, plivo, sent)
        with trio.fail_after(120):  # without the bound the say waits for ever
            await run_call(flow_, server, config=config, timeouts=timeouts)
        nursery.cancel_scope.cancel()
    return sent


def _ack_timeouts(path: str) -> float:
    sample = METRICS.registry.get_sample_value(
        "callflow_liveness_timeouts_total", {"flow": path, "kind": "checkpoint_ack"}
    )
    return sample or 0.0


def _stall_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if "no checkpoint ack" in r.getMessage() and r.levelno == logging.WARNING
    ]


async def test_a_say_nobody_acks_returns_after_the_bound_logged_once(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture, bound_by: str
) -> None:
    results: list[tuple[float, Playback]] = []
    before = _ack_timeouts("/deaf")

    @flow("/deaf", format=Format.MULAW_8K)
    async def deaf(call: Call) -> None:
        for _ in range(2):
            began = trio.current_time()
            results.append((began, await call.say(TONE)))

    sent = await _run(deaf, bound_by)
    (first_began, first), (second_began, second) = results
    for playback in (first, second):
        assert not playback.completed
        assert playback.interrupted_by == "no_ack"
    # the first checkpoint follows the first chunk, with CHUNK_S of audio ahead of it: its
    # ack is due CHUNK_S + max(5 s, CHUNK_S) later; then clearAudio, unanswered for 2 s
    bound = CHUNK_S + max(5.0, CHUNK_S)
    assert second_began - first_began == pytest.approx(bound + 2.0, abs=0.01)
    clears = [t for t, m in sent if m["event"] == "clearAudio"]
    assert clears == [pytest.approx(bound, abs=0.01), pytest.approx(second_began + bound, abs=0.01)]
    (line,) = _stall_lines(caplog)  # once per call, however often it stalls
    assert _ack_timeouts("/deaf") == before + 2  # but counted every time
    assert line.startswith("call=call-deaf no checkpoint ack (playedStream) within 6.5 s")


async def test_a_checkpoint_nobody_acks_returns_false(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture, bound_by: str
) -> None:
    results: list[bool] = []

    @flow("/deaf", format=Format.MULAW_8K)
    async def deaf(call: Call) -> None:
        await call.play(beep(0.5, freq_hz=440, rate=8000))
        results.append(await call.checkpoint())

    await _run(deaf, bound_by, RuntimeConfig(ack_grace_s=20.0))
    assert results == [False]
    (line,) = _stall_lines(caplog)
    assert "within 20.5 s" in line  # 0.5 s of audio + max(20 s, 0.5 s)


async def test_a_long_prompt_that_plivo_plays_is_never_cut(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Acks that come as Plivo plays (60 s of audio, the lead refilled from each ack) never
    reach the bound, even with the smallest grace."""
    long_tone = beep(60.0, freq_hz=440, rate=8000)
    results: list[Playback] = []

    @flow("/long", format=Format.MULAW_8K)
    async def long(call: Call) -> None:
        results.append(await call.say(long_tone))

    async with FakePlivo(long, config=RuntimeConfig(ack_grace_s=0.1)) as caller:
        await caller.hears(long_tone)
        await caller.hung_up()
    assert results[0].completed
    assert _stall_lines(caplog) == []
