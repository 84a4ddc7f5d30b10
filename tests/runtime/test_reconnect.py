"""A lost socket detaches the call; a reconnect re-attaches it (docs/reconnect.md). In virtual
time, with FakePlivo.drop()/reconnect() over the in-memory transport."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import trio
import trio.testing

from callflow import Call, CallEnded, Digits, Format, NoInput, RuntimeConfig, flow
from callflow.audio import Audio, beep, chunk_bytes, decode
from callflow.protocol import Checkpoint, PlayAudio, SendDTMF, encode_event
from callflow.runtime import LiveCalls, memory_transport_pair, run_call
from callflow.testing import FakePlivo

FMT = Format.MULAW_8K
PROMPT = Audio(np.random.default_rng(8).integers(-8000, 8000, 32000, dtype=np.int16), 8000)
"""4 s of noise: any shift or gap in what the caller hears shows."""
CHOICE = beep(0.5, freq_hz=660, rate=8000)
CHUNK = chunk_bytes(FMT)
GRACE = RuntimeConfig().reconnect_grace_s


def wire(audio: Audio) -> bytes:
    """``audio`` as the caller hears it: μ-law, decoded and encoded again (−0 becomes +0)."""
    return Audio(decode(audio.encoded(FMT), FMT), 8000).encoded(FMT)


def log_lines(caplog: pytest.LogCaptureFixture, word: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if word in r.getMessage()]


def heard_with_one_resume(heard: bytes, prompt: bytes, cut: int) -> int:
    """Where in ``prompt`` playback resumed, given that the caller heard ``prompt[:cut]``,
    then the socket dropped, then the rest from the resume point on; asserts that shape."""
    assert heard[:cut] == prompt[:cut]
    rest = heard[cut:]
    for start in range(max(0, cut - CHUNK), cut + 1):
        if rest[: len(prompt) - start] == prompt[start:]:
            return start
    raise AssertionError("the caller did not hear the rest of the prompt after the reconnect")


@flow("/menu", format=FMT)
async def menu_flow(call: Call) -> None:
    await call.say(PROMPT)  # no barge-in: a key pressed now waits for the menu
    choice = await call.menu(CHOICE, {"1": "one", "2": "two"}, timeout=3.0)
    if choice == "two":
        await call.say(CHOICE)


async def test_a_drop_mid_prompt_and_a_reconnect_resume_the_prompt_and_keep_the_key(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="callflow")
    async with FakePlivo(menu_flow) as caller:
        await trio.sleep(1.0)
        await caller.press("2")
        await trio.sleep(1.0)
        await caller.drop()
        cut = len(caller.heard.encoded(FMT))
        first_stream = caller.stream_id
        await trio.sleep(2.0)
        await caller.reconnect()
        assert await caller.hung_up() == 1000
    heard = caller.heard.encoded(FMT)
    prompt = wire(PROMPT)
    assert 15000 < cut < 17000  # about 2 s of 4 s
    resumed = heard_with_one_resume(heard, prompt, cut)
    assert 0 < cut - resumed <= CHUNK  # from the last acknowledged checkpoint: one chunk in
    assert resumed == CHUNK
    # then the menu took the key pressed before the drop: its prompt skipped, "two" played
    assert heard[cut + len(prompt) - resumed :] == wire(CHOICE)
    assert caller.connections == 2
    after = [r for r in caller.received if isinstance(r.command, Checkpoint)][-1]
    assert after.command.stream_id == caller.stream_id != first_stream
    (detached,) = log_lines(caplog, "detached")
    assert "socket lost (code 1006)" in detached
    assert caller.call_id in detached
    (reattached,) = log_lines(caplog, "re-attached")
    assert "after 2.00 s" in reattached
    assert "re-sent 2.48 s of audio from 1.52 s" in reattached
    assert not log_lines(caplog, "no reconnect")
    (ended,) = log_lines(caplog, " ended: ")
    assert "flow finished" in ended
    assert "1 re-attach" in ended


async def test_a_drop_with_no_reconnect_ends_the_call_after_the_window(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    ended: list[tuple[float, str]] = []

    @flow("/long", format=FMT)
    async def long(call: Call) -> None:
        try:
            await call.say(PROMPT)
        except CallEnded as exc:
            ended.append((trio.current_time(), exc.reason))
            raise

    async with FakePlivo(long) as caller:
        await trio.sleep(1.0)
        await caller.drop()
        dropped = trio.current_time()
        await trio.sleep(GRACE + 1)
    ((when, reason),) = ended
    assert when - dropped == pytest.approx(GRACE, abs=0.01)
    assert "no reconnect within 10 s" in reason
    assert len(log_lines(caplog, "no reconnect within")) == 1


async def test_a_pending_checkpoint_is_answered_by_the_new_socket(
    autojump_clock: trio.testing.MockClock,
) -> None:
    results: list[tuple[bool, float]] = []

    @flow("/cp", format=FMT)
    async def cp(call: Call) -> None:
        await call.play(PROMPT)
        results.append((await call.checkpoint("end"), trio.current_time()))

    async with FakePlivo(cp) as caller:
        await trio.sleep(3.0)
        await caller.drop()
        await trio.sleep(1.0)
        await caller.reconnect()
        await caller.hung_up()
    ((played, when),) = results
    assert played
    # 3 s heard, 1 s gap, then everything after the last ack (at 1.52 s) again: 2.48 s
    assert when == pytest.approx(3.0 + 1.0 + 2.48, abs=0.05)
    assert caller.heard_s == pytest.approx(3.0 + 2.48, abs=0.01)


async def test_gather_timers_run_on_through_the_gap(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """As Plivo's GetDigits would: its timers run at Plivo, on the caller's clock, which a
    WebSocket gap between Plivo and the app does not stop."""
    results: list[object] = []

    @flow("/g", format=FMT)
    async def g(call: Call) -> None:
        results.append(await call.gather(timeout=5.0, max_digits=1))
        results.append(await call.gather(timeout=5.0, max_digits=1))

    async with FakePlivo(g) as caller:
        await trio.sleep(1.0)
        await caller.drop()
        await trio.sleep(2.0)
        await caller.reconnect()
        await trio.sleep(1.0)
        await caller.press("7")  # 4 s into the 5 s timeout: in time
        await trio.sleep(0.5)
        await caller.drop()
        await trio.sleep(6.0)  # the second gather's timeout runs out during the gap
        await caller.reconnect()
        await caller.hung_up()
    assert results == [Digits("7"), NoInput()]


async def test_writes_during_the_gap_go_out_after_the_reattach_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    @flow("/w", format=FMT)
    async def w(call: Call) -> None:
        await trio.sleep(1.0)
        await call.send_dtmf("1")
        await call.send_dtmf("2")
        await call.say(CHOICE)

    async with FakePlivo(w) as caller:
        await trio.sleep(0.5)
        await caller.drop()
        await trio.sleep(2.0)
        await caller.reconnect()
        reconnected = trio.current_time()
        await caller.hung_up()
    assert caller.sent_dtmf == "12"
    dtmf = [r for r in caller.received if isinstance(r.command, SendDTMF)]
    assert all(r.time >= reconnected for r in dtmf)
    audio = [r for r in caller.received if isinstance(r.command, PlayAudio)]
    assert audio[0].time >= dtmf[-1].time
    assert caller.heard.encoded(FMT) == CHOICE.encoded(FMT)


async def test_a_lost_socket_seen_by_a_write_detaches_too(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    @flow("/late", format=FMT)
    async def late(call: Call) -> None:
        await call.say(PROMPT)

    async with FakePlivo(late, send_media=False) as caller:
        await trio.sleep(1.0)
        await caller.drop()
        await trio.sleep(0.5)
        await caller.reconnect()
        await caller.hung_up()
    assert len(log_lines(caplog, "detached")) == 1
    # 1 s heard, no checkpoint acknowledged yet: the whole prompt again
    assert caller.heard_s == pytest.approx(1.0 + 4.0, abs=0.01)


async def test_a_second_stream_while_the_first_looks_open_takes_over(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="callflow")
    runs: list[str] = []

    @flow("/once", format=FMT)
    async def once(call: Call) -> None:
        runs.append(call.call_id)
        await call.say(PROMPT)

    async with FakePlivo(once) as first:
        await trio.sleep(1.0)
        plivo_side, server_side = memory_transport_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: run_call(
                    once, server_side, live_calls=first.live_calls, call_uuid=first.call_id
                )
            )
            second = FakePlivo(transport=plivo_side, format=FMT, call_id=first.call_id)
            async with second:
                await first.hung_up()
                assert first._transport_or_fail().close_code == 1000  # the old socket closed
                await trio.sleep(4.5)
                # no checkpoint acknowledged on the old socket yet: the whole prompt here
                assert second.heard_s == pytest.approx(4.0, abs=0.01)
                await second.hung_up()
    assert runs == [first.call_id]  # never a second flow
    assert len(log_lines(caplog, "takes over")) == 1
    assert len(log_lines(caplog, "re-attached")) == 1


async def test_a_stream_naming_another_call_is_refused_with_1008(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    runs: list[str] = []

    @flow("/bound", format=FMT)
    async def bound(call: Call) -> None:
        runs.append(call.call_id)

    plivo_side, server_side = memory_transport_pair()
    caller = FakePlivo(transport=plivo_side, format=FMT, call_id="other-call", send_media=False)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: run_call(bound, server_side, live_calls=LiveCalls(), call_uuid="the-call")
        )
        async with caller:
            await caller.hung_up()
    assert plivo_side.close_code == 1008  # (the transport's: the fake may see a send fail first)
    assert runs == []
    (line,) = log_lines(caplog, "start.callId")
    assert line.startswith("call=the-call ")
    assert "'other-call'" in line


async def test_a_stream_for_a_call_that_has_ended_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runs: list[str] = []

    @flow("/short", format=FMT)
    async def short(call: Call) -> None:
        runs.append(call.call_id)

    async with FakePlivo(short) as caller:
        await caller.hung_up()
    plivo_side, server_side = memory_transport_pair()
    again = FakePlivo(transport=plivo_side, format=FMT, call_id=caller.call_id, send_media=False)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: run_call(
                short, server_side, live_calls=caller.live_calls, call_uuid=caller.call_id
            )
        )
        async with again:
            await again.hung_up()
    assert plivo_side.close_code == 1008
    assert runs == [caller.call_id]


async def test_two_streams_before_start_run_one_flow(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runs: list[str] = []

    @flow("/one", format=FMT)
    async def one(call: Call) -> None:
        runs.append(call.call_id)

    live = LiveCalls()
    first_plivo, first_server = memory_transport_pair()
    second_plivo, second_server = memory_transport_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: run_call(one, first_server, live_calls=live, call_uuid="c"))
        await trio.sleep(0.1)  # the first stream waits for its start
        nursery.start_soon(lambda: run_call(one, second_server, live_calls=live, call_uuid="c"))
        await trio.sleep(0.1)
        assert first_plivo.closed  # replaced before it started
        second = FakePlivo(transport=second_plivo, format=FMT, call_id="c", send_media=False)
        async with second:
            await second.hung_up()
    assert runs == ["c"]


async def test_without_a_reconnect_window_a_lost_socket_ends_the_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ended: list[float] = []

    @flow("/now", format=FMT)
    async def now(call: Call) -> None:
        try:
            await call.say(PROMPT)
        except CallEnded:
            ended.append(trio.current_time())

    async with FakePlivo(now, config=RuntimeConfig(reconnect_grace_s=0)) as caller:
        await trio.sleep(1.0)
        await caller.drop()
        await trio.sleep(1.0)
    assert ended == [pytest.approx(1.0)]


async def test_a_start_sent_twice_on_the_new_socket_is_ignored(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with FakePlivo(menu_flow) as caller:
        await trio.sleep(0.5)
        await caller.drop()
        await caller.reconnect()
        await caller.send_raw(encode_event(caller._start_event()))
        await caller.press("1")
        await caller.hung_up()
    assert caller.heard_s == pytest.approx(0.5 + 4.0, abs=0.01)
