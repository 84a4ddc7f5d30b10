"""Streaming prompts: ``say()`` of an async iterable of chunks arriving over time, the bounded
lead at Plivo for a 3-minute source, and a fast ``clear()``. Virtual time."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest
import trio
import trio.testing
from dslkit import RATE, make_flow, tone

from callflow import Call, Format, Playback, RuntimeConfig
from callflow.audio import Audio, silence
from callflow.protocol import ClearAudio, PlayAudio
from callflow.testing import FakePlivo

PIECES = [tone(1.0, 400 + 40 * i) for i in range(6)]
WHOLE = Audio.concat(PIECES)


async def arriving(
    pieces: list[Audio], every_s: float, log: list[str] | None = None
) -> AsyncIterator[Audio]:
    """A streaming TTS: one piece every ``every_s`` seconds."""
    try:
        for piece in pieces:
            await trio.sleep(every_s)
            yield piece
    finally:
        if log is not None:
            log.append("closed")


@pytest.mark.parametrize("every_s", [0.0, 0.3, 1.0, 1.5])
async def test_streamed_audio_chunks_play_whole_and_in_order(
    autojump_clock: trio.testing.MockClock, every_s: float
) -> None:
    got: list[Playback] = []

    async def body(call: Call) -> None:
        got.append(await call.say(arriving(PIECES, every_s)))

    async with FakePlivo(make_flow(body), send_media=False) as caller:
        await caller.hung_up()
    playback = got[0]
    assert playback.completed
    assert playback.duration_s == pytest.approx(WHOLE.duration_s)
    assert playback.heard_s == pytest.approx(WHOLE.duration_s)
    # pieces arriving slower than they play leave gaps, never a different sound
    heard = caller.heard.samples
    assert np.array_equal(heard, decode_whole())
    # the first audio went out as soon as the first piece arrived
    first = next(r for r in caller.received if isinstance(r.command, PlayAudio))
    assert first.time == pytest.approx(every_s)


def decode_whole() -> np.ndarray:
    from callflow.audio import decode

    return decode(WHOLE.encoded(Format.MULAW_8K), Format.MULAW_8K)


async def test_streamed_raw_bytes_in_the_wire_format(
    autojump_clock: trio.testing.MockClock,
) -> None:
    raw = WHOLE.encoded(Format.MULAW_8K)
    step = 1600  # 0.2 s of μ-law

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), step):
            await trio.sleep(0.1)
            yield raw[start : start + step]

    got: list[Playback] = []

    async def body(call: Call) -> None:
        got.append(await call.say(pieces()))

    async with FakePlivo(make_flow(body), send_media=False) as caller:
        await caller.hears(WHOLE)
        await caller.hung_up()
    assert got[0].completed
    assert got[0].duration_s == pytest.approx(WHOLE.duration_s)


async def test_raw_bytes_that_are_not_whole_samples_are_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    errors: list[BaseException] = []

    async def pieces() -> AsyncIterator[bytes]:
        yield b"\x00\x00" * 160
        yield b"\x00\x00\x00"  # odd length on an L16 stream

    async def body(call: Call) -> None:
        with pytest.raises(ValueError, match="whole number") as info:
            await call.say(pieces())
        errors.append(info.value)

    async with FakePlivo(make_flow(body, Format.L16_8K), send_media=False) as caller:
        await caller.hung_up()
    assert len(errors) == 1


@pytest.mark.parametrize("lead", [2.0, 3.0, 5.0, 7.5])
async def test_a_three_minute_streamed_source_never_overflows_the_lead(
    autojump_clock: trio.testing.MockClock, lead: float
) -> None:
    second = silence(1.0, rate=RATE)
    produced: list[float] = []

    async def tts() -> AsyncIterator[Audio]:
        for _ in range(180):  # produced far faster than real time
            produced.append(trio.current_time())
            yield second

    got: list[Playback] = []

    async def body(call: Call) -> None:
        got.append(await call.say(tts()))

    config = RuntimeConfig(max_lead_s=lead)
    async with FakePlivo(make_flow(body), config=config, send_media=False) as caller:
        await caller.hung_up()
    assert got[0].completed
    assert caller.heard_s == pytest.approx(180.0)
    # what the fake held: its queue and the rest of the chunk it was playing
    assert caller.max_queued_s <= lead + 1e-9
    assert caller.max_queued_s >= lead - 1.0  # the lead is used, not wasted
    # the source was pulled as playback progressed (backpressure), not all at once
    assert produced[-1] >= 180.0 - lead - 1.0


@pytest.mark.parametrize("fmt", list(Format))
@pytest.mark.parametrize("lead", [2.0, 5.0])
async def test_a_three_minute_prompt_never_overflows_the_lead(
    autojump_clock: trio.testing.MockClock, fmt: Format, lead: float
) -> None:
    three_minutes = tone(180.0, 350)
    got: list[Playback] = []

    async def body(call: Call) -> None:
        got.append(await call.say(three_minutes))

    config = RuntimeConfig(max_lead_s=lead)
    async with FakePlivo(make_flow(body, fmt), config=config, send_media=False) as caller:
        await caller.hears(three_minutes)
        await caller.hung_up()
    assert got[0] == Playback(True, 180.0, pytest.approx(180.0))
    chunk_s = 12160 / fmt.bytes_per_second  # the longest playAudio of this format
    assert caller.max_queued_s <= lead + 1e-9
    assert caller.max_queued_s > lead - chunk_s  # the lead is used, not wasted


async def test_clear_during_a_long_stream_is_fast_and_closes_the_source(
    autojump_clock: trio.testing.MockClock,
) -> None:
    closed: list[str] = []
    pieces = [tone(1.0, 440)] * 180
    clear_took: list[float] = []
    got: list[Playback] = []

    async def body(call: Call) -> None:
        async with trio.open_nursery() as nursery:

            async def clear_later() -> None:
                await trio.sleep(60.0)
                began = trio.current_time()
                await call.clear()
                clear_took.append(trio.current_time() - began)

            nursery.start_soon(clear_later)
            got.append(await call.say(arriving(pieces, 0.0, closed)))

    async with FakePlivo(make_flow(body), send_media=False) as caller:
        await caller.hung_up()
    playback = got[0]
    assert clear_took == [0]  # Plivo (the fake) acks at once; nothing to wait out
    assert isinstance(playback, Playback)
    assert playback.interrupted_by == "cleared"
    assert playback.heard_s == pytest.approx(60.0, abs=1e-3)
    assert caller.heard_s == pytest.approx(60.0, abs=1e-3)
    assert caller.cleared[0].dropped_s <= RuntimeConfig().max_lead_s + 1e-9
    assert closed == ["closed"]  # the generator was closed, not left suspended
    index = next(i for i, r in enumerate(caller.received) if isinstance(r.command, ClearAudio))
    assert not [r for r in caller.received[index:] if isinstance(r.command, PlayAudio)]


async def test_barge_in_on_a_streamed_prompt(autojump_clock: trio.testing.MockClock) -> None:
    closed: list[str] = []
    got: list[object] = []

    async def body(call: Call) -> None:
        got.append(await call.say(arriving(PIECES, 0.5, closed), barge_in=True))
        got.append(await call.wait_dtmf())

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(2.0)
        pressed = trio.current_time()
        await caller.press("8")
        clear = await caller.wait_for(ClearAudio)
        assert clear.time == pressed
        await caller.hung_up()
    playback, key = got
    assert isinstance(playback, Playback)
    assert playback.interrupted_by == "8"
    assert key == "8"
    assert closed == ["closed"]
    assert abs(playback.heard_s - caller.heard_s) <= 1 / RATE + 1e-9


@pytest.mark.parametrize("lead", [0.0, 0.5, 1.5])
def test_a_lead_shorter_than_one_chunk_is_refused(lead: float) -> None:
    # one μ-law playAudio chunk is 1.52 s: a smaller lead could not be kept
    with pytest.raises(ValueError, match="max_lead_s"):
        RuntimeConfig(max_lead_s=lead)


def test_the_shortest_lead_is_one_chunk_of_any_format() -> None:
    assert RuntimeConfig(max_lead_s=1.52).max_lead_s == 1.52


async def test_an_empty_source_is_heard_at_once_and_sends_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def nothing() -> AsyncIterator[Audio]:
        return
        yield  # an async generator that yields nothing

    got: list[Playback] = []

    async def body(call: Call) -> None:
        await call.say(PIECES[0])
        began = len(caller.received)  # ``caller`` is bound below, before the flow gets here
        for source in (b"", Audio.silence(0.0, RATE), nothing()):
            got.append(await call.say(source, barge_in=True))
        got.append(await call.say(nothing()))
        assert caller.received[began:] == []
        await call.say(PIECES[1])

    async with FakePlivo(make_flow(body), send_media=False) as caller:
        await caller.hears(PIECES[0])
        await caller.hears(PIECES[1])
        await caller.hung_up()
    assert got == [Playback(True, 0.0, 0.0)] * 4
    assert not caller.cleared
