"""FakePlivo's own fidelity where the DSL tests lean on it: what it counts as heard when a
clear lands exactly as a chunk ends, and ``speak`` when the call ends mid-speech."""

from __future__ import annotations

import base64

import pytest
import trio
import trio.testing
from dslkit import LONG, RATE, make_flow, voice

from callflow import Call, Format
from callflow.protocol import ClearAudio, encode, play_audio_message, play_audio_prefix
from callflow.runtime import memory_transport_pair
from callflow.testing import FakePlivo


async def test_a_clear_as_a_chunk_ends_counts_the_chunk_once(
    mock_clock: trio.testing.MockClock,
) -> None:
    fmt = Format.MULAW_8K
    payload = base64.b64encode(b"\xff" * RATE).decode()  # one second of μ-law silence
    # Trio runs the tasks woken together in either order; repeat so both orders happen.
    for _ in range(24):
        plivo_side, server_side = memory_transport_pair()
        async with FakePlivo(transport=plivo_side, format=fmt, send_media=False) as caller:
            await server_side.receive()  # start
            prefix = play_audio_prefix(caller.stream_id, fmt)
            await server_side.send(play_audio_message(prefix, payload))
            await trio.testing.wait_all_tasks_blocked()  # the chunk is playing
            mock_clock.jump(1.0)  # its end has come; the player has not woken yet
            await server_side.send(encode(ClearAudio(stream_id=caller.stream_id)))
            await trio.testing.wait_all_tasks_blocked()
            assert caller.heard_s == pytest.approx(1.0)
            assert caller.cleared[0].dropped_s == pytest.approx(0.0)


async def test_speak_returns_when_the_call_ends_mid_speech(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def body(call: Call) -> None:
        await call.say(LONG, barge_in="speech")  # the speech stops it; the flow returns

    async with FakePlivo(make_flow(body)) as caller:
        began = trio.current_time()
        await caller.speak(voice(5.0))
        assert trio.current_time() - began < 1.0  # the call ended under it
        assert await caller.hung_up() == 1000


async def test_queued_audio_counts_the_unplayed_rest_of_the_chunk_playing(
    mock_clock: trio.testing.MockClock,
) -> None:
    """What Plivo holds is the queue *and* what is left of the chunk it is playing: the
    lead tests compare this with ``RuntimeConfig.max_lead_s``, so it must not leave the
    playing chunk out."""
    fmt = Format.MULAW_8K
    second = base64.b64encode(b"\xff" * RATE).decode()  # one second of μ-law silence
    plivo_side, server_side = memory_transport_pair()
    async with FakePlivo(transport=plivo_side, format=fmt, send_media=False) as caller:
        await server_side.receive()  # start
        prefix = play_audio_prefix(caller.stream_id, fmt)
        await server_side.send(play_audio_message(prefix, second))
        await trio.testing.wait_all_tasks_blocked()  # the first second is playing
        await server_side.send(play_audio_message(prefix, second))
        await trio.testing.wait_all_tasks_blocked()
        assert caller.queued_s == pytest.approx(2.0)
        assert caller.max_queued_s == pytest.approx(2.0)
        mock_clock.jump(0.25)
        assert caller.queued_s == pytest.approx(1.75)
        await server_side.send(encode(ClearAudio(stream_id=caller.stream_id)))
        await trio.testing.wait_all_tasks_blocked()
        assert caller.cleared[0].dropped_s == pytest.approx(1.75)
        assert caller.queued_s == 0
        assert caller.heard_s == pytest.approx(0.25)
    assert caller.max_queued_s == pytest.approx(2.0)


async def test_speak_without_media_is_refused_rather_than_hanging(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def body(call: Call) -> None:
        await call.wait_speech()

    async with FakePlivo(make_flow(body), send_media=False) as caller:
        with pytest.raises(RuntimeError, match="send_media=True"):
            await caller.speak(voice(0.5))
        await caller.hang_up()
