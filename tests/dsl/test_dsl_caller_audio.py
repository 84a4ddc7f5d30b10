"""The caller's audio: ``listen()`` with a slow consumer, ``record()`` and each way it stops,
``Recording.save()``, and ``wait_speech()`` ignoring a cough. Virtual time."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import trio
import trio.testing
from dslkit import RATE, make_flow, voice

from callflow import Call, Format, Recording
from callflow.audio import Audio, beep, read_wav
from callflow.testing import FakePlivo

BEEP = beep(0.25, freq_hz=1000, rate=RATE)
"""What ``record(beep=True)`` plays first."""
FRAME = 160  # samples per 20 ms frame at 8 kHz


def ramp(frames: int) -> Audio:
    """``frames`` 20 ms frames, frame i holding the constant sample 100 * (i + 1): on an L16
    stream (lossless) each frame says which one it is."""
    values = np.repeat(np.arange(1, frames + 1, dtype=np.int16) * 100, FRAME)
    return Audio(values, RATE)


# -- listen ------------------------------------------------------------------------------------


async def test_a_slow_listener_loses_the_oldest_frames_and_counts_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    listening = trio.Event()
    kept: list[int] = []
    dropped: list[int] = []
    keys: list[tuple[str, float]] = []

    async def body(call: Call) -> None:
        async with trio.open_nursery() as nursery:

            async def keys_meanwhile() -> None:
                key = await call.wait_dtmf()
                keys.append((key, trio.current_time()))

            nursery.start_soon(keys_meanwhile)
            async with call.listen(max_frames=10) as frames:
                listening.set()
                await trio.sleep(1.0)  # a consumer that stalls for a second
                async for frame in frames:  # then keeps up
                    value = int(frame[0])
                    assert (frame == value).all()
                    if value:
                        kept.append(value // 100 - 1)
                    if value // 100 == 100:
                        break
                dropped.append(frames.dropped)

    async with FakePlivo(make_flow(body, Format.L16_8K)) as caller:
        await listening.wait()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(caller.speak, ramp(100))
            await trio.sleep(0.5)
            pressed = trio.current_time()
            await caller.press("4")  # while the listener is stalled
        await caller.hung_up()
    # the reader never waited for the listener: the key arrived when pressed
    assert keys == [("4", pressed)]
    # the oldest frames were dropped; the newest 10 and everything after were kept, in order
    first = kept[0]
    assert kept == list(range(first, 100))
    assert 35 <= first <= 45
    assert first <= dropped[0] <= first + 2  # plus any silence frames before the speech


async def test_no_frames_are_dropped_for_a_listener_that_keeps_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    kept: list[int] = []
    dropped: list[int] = []

    async def body(call: Call) -> None:
        async with call.listen(max_frames=2) as frames:
            async for frame in frames:
                if frame[0]:
                    kept.append(int(frame[0]) // 100 - 1)
                if len(kept) == 50:
                    break
            dropped.append(frames.dropped)

    async with FakePlivo(make_flow(body, Format.L16_8K)) as caller:
        await caller.speak(ramp(50))
        await caller.hung_up()
    assert kept == list(range(50))
    assert dropped == [0]


async def test_listening_ends_with_the_call(autojump_clock: trio.testing.MockClock) -> None:
    got: list[int] = []

    async def body(call: Call) -> None:
        async with call.listen() as frames:
            count = 0
            async for _ in frames:  # ends (StopAsyncIteration) when the caller hangs up
                count += 1
            got.append(count)

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(1.0)
        await caller.hang_up()
        await caller.hung_up()
    assert got
    assert 49 <= got[0] <= 51  # a second of 20 ms frames, none lost


@pytest.mark.parametrize(
    ("payload", "problem"),
    [("!!!not base64!!!", "base64"), ("AQID", "even number of bytes")],  # AQID: 3 bytes
)
async def test_an_undecodable_media_payload_is_logged_and_the_listener_goes_on(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    payload: str,
    problem: str,
) -> None:
    kept: list[int] = []
    errors: list[int] = []

    async def body(call: Call) -> None:
        async with call.listen() as frames:
            async for frame in frames:
                if frame[0]:
                    kept.append(int(frame[0]) // 100 - 1)
                if len(kept) == 5:
                    break
        errors.append(call.protocol_errors)

    async with FakePlivo(make_flow(body, Format.L16_8K), call_id="bad-media") as caller:
        await trio.sleep(0.1)
        bad = {
            "event": "media",
            "streamId": caller.stream_id,
            "media": {"track": "inbound", "timestamp": "1", "chunk": 1, "payload": payload},
        }
        await caller.send_raw(json.dumps(bad))
        await caller.speak(ramp(5))
        assert await caller.hung_up() == 1000
    assert kept == list(range(5))
    assert errors == [1]
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("call=bad-media" in m and "media.payload" in m and problem in m for m in logged), (
        logged
    )


# -- record ------------------------------------------------------------------------------------


async def recording(
    script: object, *, fmt: Format = Format.MULAW_8K, after: object = None, **kwargs: object
) -> tuple[Recording, FakePlivo, list[object]]:
    got: list[Recording] = []
    extra: list[object] = []

    async def body(call: Call) -> None:
        got.append(await call.record(**kwargs))  # type: ignore[arg-type]
        if after is not None:
            extra.append(await after(call))  # type: ignore[operator]

    async with FakePlivo(make_flow(body, fmt)) as caller:
        await script(caller)  # type: ignore[operator]
        await caller.hung_up()
    return got[0], caller, extra


async def test_record_stops_at_max_length(autojump_clock: trio.testing.MockClock) -> None:
    async def script(caller: FakePlivo) -> None:
        await caller.hears(BEEP)
        await caller.speak(voice(4.0))

    rec, caller, _ = await recording(script, max_s=2.0, silence_s=1.0)
    assert rec.reason == "max_length"
    assert rec.key is None
    assert rec.speech
    assert rec.duration_s == pytest.approx(2.0, abs=0.021)
    assert caller.heard_s == pytest.approx(BEEP.duration_s)


async def test_record_stops_after_silence(autojump_clock: trio.testing.MockClock) -> None:
    async def script(caller: FakePlivo) -> None:
        await caller.hears(BEEP)
        await caller.speak(voice(1.0))

    rec, _, _ = await recording(script, max_s=30.0, silence_s=1.5)
    assert rec.reason == "silence"
    assert rec.speech
    # a second of voice, then 1.5 s of silence
    assert rec.duration_s == pytest.approx(2.5, abs=0.05)
    frames = rec.audio.samples[: len(rec.audio.samples) // FRAME * FRAME].reshape(-1, FRAME)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    assert np.count_nonzero(rms > 1000) == 50  # the second of voice is in it, whole


async def test_silence_alone_ends_a_recording_with_no_speech(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def script(caller: FakePlivo) -> None:
        await caller.hears(BEEP)

    rec, _, _ = await recording(script, silence_s=2.0)
    assert rec.reason == "silence"
    assert not rec.speech
    assert rec.duration_s == pytest.approx(2.0, abs=0.021)


async def test_record_defaults_are_plivo_records(autojump_clock: trio.testing.MockClock) -> None:
    """Plivo ``<Record>``: ``timeout`` 15 s of silence, ``maxLength`` 60 s, ``playBeep``."""

    async def script(caller: FakePlivo) -> None:
        await caller.hears(BEEP)

    rec, _, _ = await recording(script)
    assert rec.reason == "silence"
    assert rec.duration_s == pytest.approx(15.0, abs=0.021)

    async def talker(caller: FakePlivo) -> None:
        await caller.hears(BEEP)
        await caller.speak(voice(70.0))

    rec, _, _ = await recording(talker)
    assert rec.reason == "max_length"
    assert rec.duration_s == pytest.approx(60.0, abs=0.021)


async def test_record_stops_on_the_finish_key_and_consumes_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def script(caller: FakePlivo) -> None:
        await caller.hears(BEEP)
        await caller.speak(voice(1.0))
        await caller.press("*")  # not a finish key: recording goes on, the key is kept
        await caller.speak(voice(0.5))
        await caller.press("#")
        await trio.sleep(0.5)
        await caller.press("5")

    async def after(call: Call) -> object:
        return (call.pending_dtmf(), await call.wait_dtmf(), await call.wait_dtmf())

    rec, _, extra = await recording(script, after=after, silence_s=5.0)
    assert rec.reason == "key"
    assert rec.key == "#"
    assert rec.duration_s == pytest.approx(1.5, abs=0.05)
    assert extra == [("*", "*", "5")]  # "#" was consumed; "*" and later keys were not


async def test_a_hangup_ends_the_recording_and_keeps_the_audio(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    path = tmp_path / "voicemail.wav"

    async def script(caller: FakePlivo) -> None:
        await caller.hears(BEEP)
        await caller.speak(voice(1.2))
        await caller.hang_up()

    async def after(call: Call) -> object:
        return call.ended

    rec, _, extra = await recording(script, after=after)
    assert rec.reason == "hangup"
    assert rec.speech
    assert rec.duration_s == pytest.approx(1.2, abs=0.05)
    assert extra == [True]
    rec.save(path)
    again = read_wav(path)
    assert again == rec.audio
    assert again.sample_rate == RATE


@pytest.mark.parametrize("fmt", list(Format))
async def test_recording_save_round_trips(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, fmt: Format
) -> None:
    async def script(caller: FakePlivo) -> None:
        await trio.sleep(0.3)
        await caller.speak(voice(0.5))

    rec, caller, _ = await recording(script, fmt=fmt, beep=False, silence_s=0.5)
    assert caller.heard_s == 0  # no beep
    assert rec.audio.sample_rate == fmt.sample_rate
    path = tmp_path / "rec.wav"
    rec.save(path)
    assert read_wav(path) == rec.audio
    assert rec.duration_s == pytest.approx(1.3, abs=0.05)


async def test_a_hangup_during_the_beep_ends_the_recording_not_the_method(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def script(caller: FakePlivo) -> None:
        await trio.sleep(0.1)  # the beep is playing
        await caller.hang_up()

    async def after(call: Call) -> object:
        return call.ended

    rec, caller, extra = await recording(script, after=after)
    assert rec.reason == "hangup"
    assert rec.duration_s == 0
    assert not rec.speech
    assert extra == [True]
    assert caller.heard_s == pytest.approx(0.1, abs=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_s": 0}, "positive seconds"),
        ({"silence_s": -1}, "positive seconds"),
        ({"finish_on_key": "#x"}, "finish_on_key"),
    ],
)
async def test_record_refuses_arguments_it_cannot_honour(
    autojump_clock: trio.testing.MockClock, kwargs: dict[str, object], match: str
) -> None:
    errors: list[BaseException] = []

    async def body(call: Call) -> None:
        with pytest.raises(ValueError, match=match) as info:
            await call.record(**kwargs)  # type: ignore[arg-type]
        errors.append(info.value)

    async with FakePlivo(make_flow(body)) as caller:
        await caller.hung_up()
    assert len(errors) == 1
    assert caller.heard_s == 0  # refused before the beep


# -- wait_speech -------------------------------------------------------------------------------


async def test_wait_speech_ignores_a_cough_and_returns_on_speech(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[float] = []

    async def body(call: Call) -> None:
        await call.wait_speech()
        got.append(trio.current_time())

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(1.0)
        await caller.speak(voice(0.1))  # a cough
        await trio.sleep(2.0)
        assert not got
        began = trio.current_time()
        await caller.speak(voice(0.5))
        await caller.hung_up()
    assert got[0] - began == pytest.approx(0.18, abs=0.021)


async def test_wait_speech_raises_call_ended_on_hangup(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from callflow import CallEnded

    got: list[str] = []

    async def body(call: Call) -> None:
        try:
            await call.wait_speech()
        except CallEnded:
            got.append("ended")
            raise

    async with FakePlivo(make_flow(body)) as caller:
        await trio.sleep(1.0)
        await caller.hang_up()
        await caller.hung_up()
    assert got == ["ended"]
