"""The per-call runtime against FakePlivo, in virtual time (trio's autojump clock)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import trio
import trio.testing

from callflow import Call, CallEnded, Format, RuntimeConfig, flow
from callflow.audio import beep, decode, silence
from callflow.protocol import Checkpoint, PlayAudio, SendDTMF
from callflow.runtime import memory_transport_pair, run_call
from callflow.testing import FakePlivo

TONE = beep(2.0, freq_hz=440, rate=8000)
SHORT = beep(0.3, freq_hz=660, rate=8000)


def tone_flow(fmt: Format = Format.MULAW_8K) -> object:
    @flow("/tone", format=fmt)
    async def tone(call: Call) -> None:
        await call.say(TONE)

    return tone


async def test_say_returns_once_heard(autojump_clock: trio.testing.MockClock) -> None:
    results: list[tuple[float, object]] = []

    @flow("/t", format=Format.MULAW_8K)
    async def t(call: Call) -> None:
        began = trio.current_time()
        playback = await call.say(TONE)
        results.append((trio.current_time() - began, playback))

    async with FakePlivo(t) as caller:
        await caller.hears(TONE)
        await caller.hung_up()
    elapsed, playback = results[0]
    assert 2.0 <= elapsed < 2.1
    assert playback.completed
    assert playback.heard_s == pytest.approx(2.0)


@pytest.mark.parametrize("fmt", list(Format))
async def test_every_message_is_valid_for_the_format(
    autojump_clock: trio.testing.MockClock, fmt: Format
) -> None:
    async with FakePlivo(tone_flow(fmt)) as caller:  # type: ignore[arg-type]
        await caller.hears(TONE)
        await caller.hung_up()
    assert not caller.protocol_errors
    names = []
    for item in caller.received:
        assert len(item.text.encode()) <= 65536
        message = json.loads(item.text)
        if isinstance(item.command, PlayAudio):
            assert message["media"]["contentType"] == fmt.encoding
            assert message["media"]["sampleRate"] == fmt.sample_rate
            assert len(message["media"]["payload"]) <= 16384
        if isinstance(item.command, Checkpoint):
            assert message["streamId"] == caller.stream_id
            names.append(item.command.name)
    assert names
    assert len(names) == len(set(names))


async def test_type_ahead_keys_kept_in_order(autojump_clock: trio.testing.MockClock) -> None:
    got: list[str] = []

    @flow("/keys", format=Format.MULAW_8K)
    async def keys(call: Call) -> None:
        await call.say(TONE)  # keys pressed during the prompt are kept
        for _ in range(3):
            got.append(await call.wait_dtmf())

    async with FakePlivo(keys) as caller:
        await trio.sleep(0.5)
        await caller.press("12#", gap=0.2)
        await caller.hung_up()
    assert got == ["1", "2", "#"]


async def test_clear_stops_playback_and_reports_heard(
    autojump_clock: trio.testing.MockClock,
) -> None:
    long = beep(10.0, freq_hz=440, rate=8000)
    outcome = []

    @flow("/clear", format=Format.MULAW_8K)
    async def clearing(call: Call) -> None:
        async with trio.open_nursery() as nursery:

            async def interrupt() -> None:
                await trio.sleep(3.3)
                await call.clear()

            nursery.start_soon(interrupt)
            outcome.append(await call.say(long))

    async with FakePlivo(clearing) as caller:
        await caller.hung_up()
    playback = outcome[0]
    assert not playback.completed
    assert caller.cleared
    assert caller.cleared[0].time == pytest.approx(3.3, abs=0.01)
    assert caller.heard_s == pytest.approx(3.3, abs=0.01)
    chunk_s = 12160 / 8000
    assert abs(playback.heard_s - caller.heard_s) <= chunk_s
    # nothing queued was left to play after the clear
    assert caller.queued_s == 0


async def test_long_prompt_never_exceeds_the_lead(autojump_clock: trio.testing.MockClock) -> None:
    three_minutes = silence(180.0, rate=8000)
    config = RuntimeConfig(max_lead_s=4.0)

    @flow("/long", format=Format.MULAW_8K)
    async def long_flow(call: Call) -> None:
        playback = await call.say(three_minutes)
        assert playback.completed

    async with FakePlivo(long_flow, config=config, send_media=False) as caller:
        await caller.hears(three_minutes)
        await caller.hung_up()
    assert caller.max_queued_s <= 4.0 + 1e-9
    assert caller.heard_s == pytest.approx(180.0)


async def test_caller_hangup_raises_call_ended_and_runs_finally(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events: list[str] = []

    @flow("/hang", format=Format.MULAW_8K)
    async def hang(call: Call) -> None:
        try:
            await call.say(beep(30.0, rate=8000))
        except CallEnded:
            events.append("ended")
            raise
        finally:
            events.append("finally")

    async with FakePlivo(hang) as caller:
        await trio.sleep(1.0)
        await caller.hang_up()
        await caller.hung_up()
    assert events == ["ended", "finally"]


async def test_flow_ignoring_hangup_is_cancelled_after_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cancelled = []

    @flow("/stubborn", format=Format.MULAW_8K)
    async def stubborn(call: Call) -> None:
        try:
            await trio.sleep(3600)
        except trio.Cancelled:
            cancelled.append(trio.current_time())
            raise

    config = RuntimeConfig(hangup_grace_s=2.0)
    async with FakePlivo(stubborn, config=config) as caller:
        await trio.sleep(1.0)
        await caller.hang_up()
        await caller.hung_up()
    assert cancelled == [pytest.approx(3.0)]


async def test_raising_flow_is_logged_and_ends_only_its_call(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    @flow("/boom", format=Format.MULAW_8K)
    async def boom(call: Call) -> None:
        await call.say(SHORT)
        raise RuntimeError("kaboom")

    survivors = []

    @flow("/fine", format=Format.MULAW_8K)
    async def fine(call: Call) -> None:
        await call.say(TONE)
        survivors.append(call.call_id)

    async with (
        FakePlivo(fine, call_id="good-call") as good,
        FakePlivo(boom, call_id="bad-call") as bad,
    ):
        await bad.hung_up()
        await good.hears(TONE)
        await good.hung_up()
    assert survivors == ["good-call"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "call=bad-call" in errors[0].getMessage()
    assert errors[0].exc_info is not None
    assert bad.close_code == 1011  # the flow raised: the stream says so
    assert good.close_code == 1000


async def test_garbage_and_unknown_events_are_logged_and_the_call_goes_on(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    got = []

    @flow("/robust", format=Format.MULAW_8K)
    async def robust(call: Call) -> None:
        got.append(await call.wait_dtmf())
        await call.say(SHORT)

    async with FakePlivo(robust, call_id="odd-call") as caller:
        await caller.send_raw("this is not json")
        await caller.send_raw('{"event": "dtmf", "dtmf": {"digit": "Z"}}')
        await caller.send_raw('{"event": "somethingNew", "sequenceNumber": 3}')
        await caller.send_raw("[1, 2, 3]")
        await caller.press("7")
        await caller.hears(SHORT)
        await caller.hung_up()
    assert got == ["7"]
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("call=odd-call" in m for m in messages) == 4
    assert any("somethingNew" in m for m in messages)
    assert any("dtmf.digit" in m for m in messages)


async def test_wrong_codec_is_refused_before_the_flow_runs(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    ran = []

    @flow("/mulaw", format=Format.MULAW_8K)
    async def mulaw(call: Call) -> None:
        ran.append(True)

    plivo_side, server_side = memory_transport_pair()
    start = {
        "sequenceNumber": 0,
        "event": "start",
        "start": {
            "callId": "wrong-codec-call",
            "streamId": "s1",
            "accountId": "a",
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": 16000},
        },
        "extra_headers": "{}",
    }
    await plivo_side.send(json.dumps(start))
    await run_call(mulaw, server_side)
    assert not ran
    assert server_side.close_code == 1003
    line = next(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert "wrong-codec-call" in line
    assert "start.mediaFormat" in line


async def test_returning_flow_lets_played_audio_finish(
    autojump_clock: trio.testing.MockClock,
) -> None:
    @flow("/bye", format=Format.MULAW_8K)
    async def bye(call: Call) -> None:
        await call.play(TONE)  # queued, not awaited: the runtime drains before closing

    async with FakePlivo(bye) as caller:
        await caller.hears(TONE)
        await caller.hung_up()
    assert caller.heard_s == pytest.approx(2.0)


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the runtime's decodes of inbound media (``Call._on_media``'s ``decode``)."""
    import callflow.runtime._inbound as call_module

    count = [0]
    real = call_module.decode

    def counting(data: bytes, fmt: Format) -> np.ndarray:
        count[0] += 1
        return real(data, fmt)

    monkeypatch.setattr(call_module, "decode", counting)
    return count


async def test_listen_decodes_only_while_listening(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    decodes = count_decodes(monkeypatch)
    voice = beep(1.0, freq_hz=500, rate=8000)
    captured: list[np.ndarray] = []
    seen: list[tuple[int, int]] = []  # (frames received, frames decoded)

    @flow("/listen", format=Format.MULAW_8K)
    async def listening(call: Call) -> None:
        await trio.sleep(1.0)
        seen.append((call.frames_received, decodes[0]))
        async with call.listen() as frames:
            async for frame in frames:
                captured.append(frame)
                if len(captured) == 60:
                    break
        assert frames.dropped == 0
        seen.append((call.frames_received, decodes[0]))
        await trio.sleep(1.0)
        seen.append((call.frames_received, decodes[0]))

    async with FakePlivo(listening) as caller:
        await trio.sleep(1.01)
        await caller.speak(voice)
        await caller.hung_up()
    (before, none), (during, listened), (after, still) = seen
    assert before >= 45  # frames arrived ...
    assert none == 0  # ... and were not decoded: nobody listened
    assert listened == 60  # each frame the listener took was decoded once
    assert after - during >= 45
    assert still == listened  # closing the listener stopped the decoding

    audio = np.concatenate(captured)
    assert audio.dtype == np.int16
    assert len(audio) == 60 * 160
    # the caller's voice arrives whole and in order, as μ-law decodes it
    expected = decode(voice.encoded(Format.MULAW_8K), Format.MULAW_8K)
    starts = [
        i
        for i in range(0, len(audio) - len(expected) + 1, 160)
        if np.array_equal(audio[i : i + len(expected)], expected)
    ]
    assert len(starts) == 1


async def test_speech_barge_in_decodes_only_while_its_prompt_plays(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    decodes = count_decodes(monkeypatch)
    seen: list[int] = []

    @flow("/speech", format=Format.MULAW_8K)
    async def speech(call: Call) -> None:
        await call.say(TONE, barge_in=True)  # keys only: no frame needs decoding
        seen.append(decodes[0])
        await call.say(TONE, barge_in="speech")  # the VAD reads every frame meanwhile
        seen.append(decodes[0])
        await trio.sleep(1.0)
        seen.append(decodes[0])

    async with FakePlivo(speech) as caller:
        await caller.hears(TONE)
        await caller.hears(TONE)
        await caller.hung_up()
    keys_only, speech_prompt, after = seen
    assert keys_only == 0
    assert 95 <= speech_prompt <= 101  # the 2 s prompt's 20 ms frames
    assert after == speech_prompt  # the prompt is over: decoding stopped


async def test_send_dtmf_and_status_reach_the_flow(autojump_clock: trio.testing.MockClock) -> None:
    statuses = []

    @flow("/misc", format=Format.MULAW_8K)
    async def misc(call: Call) -> None:
        await call.send_dtmf("12#")
        statuses.append(await call.wait_status("PlayedStream"))

    async with FakePlivo(misc, call_id="status-call") as caller:
        await trio.testing.wait_all_tasks_blocked()
        assert caller.live_calls.deliver_status(
            "status-call", {"Event": "PlayedStream", "CallUUID": "status-call"}
        )
        await caller.hung_up()
    assert caller.sent_dtmf == "12#"
    assert any(isinstance(r.command, SendDTMF) for r in caller.received)
    assert statuses[0].event == "PlayedStream"
    assert not caller.live_calls.deliver_status("status-call", {"Event": "x"})


async def test_clear_without_ack_times_out(autojump_clock: trio.testing.MockClock) -> None:
    plivo_side, server_side = memory_transport_pair()
    done = []

    @flow("/noack", format=Format.MULAW_8K)
    async def noack(call: Call) -> None:
        await call.clear()
        done.append(trio.current_time())

    start = {
        "event": "start",
        "start": {
            "callId": "c",
            "streamId": "s",
            "accountId": "a",
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
        },
    }
    await plivo_side.send(json.dumps(start))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_call, noack, server_side)
        message = json.loads(await plivo_side.receive())
        assert message == {"event": "clearAudio", "streamId": "s"}
    assert done == [pytest.approx(2.0)]


@pytest.mark.parametrize("wait", ["say", "checkpoint"])
async def test_hangup_while_waiting_for_fully_sent_audio_raises_call_ended(
    autojump_clock: trio.testing.MockClock, wait: str
) -> None:
    outcomes: list[object] = []

    @flow("/sent", format=Format.MULAW_8K)
    async def sent(call: Call) -> None:
        try:
            if wait == "say":
                outcomes.append(await call.say(TONE))  # 2 s: all sent at once (within the lead)
            else:
                await call.play(TONE)
                outcomes.append(await call.checkpoint())
        except CallEnded as exc:
            outcomes.append(exc)

    async with FakePlivo(sent) as caller:
        await trio.sleep(1.0)
        await caller.hang_up()
        await caller.hung_up()
    assert len(outcomes) == 1
    assert isinstance(outcomes[0], CallEnded), outcomes[0]
    assert "closed by Plivo" in outcomes[0].reason


def test_barge_in_keys_are_checked_and_upper_cased() -> None:
    from callflow import BargeIn

    assert BargeIn(keys="a#").keys == "A#"
    keys = BargeIn.of("12")
    assert keys is not None
    assert keys.matches_key("2")
    assert not keys.matches_key("3")
    with pytest.raises(ValueError, match="DTMF"):
        BargeIn(keys="xyz")
    with pytest.raises(ValueError, match="DTMF"):
        BargeIn.of("1x")


async def test_a_checkpoint_name_is_used_once_whoever_chose_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A flow may not reuse a checkpoint name, nor take one of callflow's own (``cf<n>``) that
    went out already; callflow's own names skip the ones a flow chose."""
    refused: list[str] = []

    @flow("/names", format=Format.MULAW_8K)
    async def names(call: Call) -> None:
        await call.say(SHORT)  # callflow's own checkpoint after the audio: cf1
        assert await call.checkpoint("cf3")
        assert await call.checkpoint("mine")
        for name in ("cf1", "cf3", "mine"):
            with pytest.raises(ValueError, match="already used") as exc:
                await call.checkpoint(name)
            refused.append(str(exc.value))
        await call.say(SHORT)  # cf2
        await call.say(SHORT)  # cf3 is the flow's: cf4
        assert await call.checkpoint("cf5")
        assert await call.checkpoint("cf40")  # not sent by anyone yet

    async with FakePlivo(names) as caller:
        await caller.hung_up()
    sent = [json.loads(i.text)["name"] for i in caller.received if '"checkpoint"' in i.text]
    assert sent == ["cf1", "cf3", "mine", "cf2", "cf4", "cf5", "cf40"]
    assert len(refused) == 3
