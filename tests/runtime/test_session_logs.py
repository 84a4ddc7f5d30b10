"""``run_call``'s log lines name the call before Plivo's ``start`` does (in-memory, virtual
time)."""

from __future__ import annotations

import json
import logging

import pytest
import trio
import trio.testing

from callflow import Call, Format, flow
from callflow.protocol import Start, encode_event
from callflow.runtime import memory_transport_pair, run_call


@flow("/early", format=Format.MULAW_8K)
async def early(call: Call) -> None:
    pass


async def test_messages_before_start_are_logged_with_the_answered_call_id(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Before ``start`` the call id is the answer webhook's ``CallUUID`` (the server carries
    it in the stream token): every line about this stream names it."""
    plivo_side, server_side = memory_transport_pair()
    await plivo_side.send("not json at all")
    await plivo_side.send(json.dumps({"event": "mystery", "streamId": "s"}))
    await run_call(early, server_side, answer_params={"CallUUID": "early-call"})  # no start
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(messages) == 3, messages  # not JSON, unknown event, no start in time
    assert all("call=early-call" in m for m in messages), messages
    assert "not JSON" in messages[0]
    assert "mystery" in messages[1]
    assert "no start event" in messages[2]
    assert server_side.close_code == 1008


async def test_a_stream_closed_before_start_names_the_answered_call(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="callflow")
    plivo_side, server_side = memory_transport_pair()
    await plivo_side.aclose(1000, "gone")
    await run_call(early, server_side, answer_params={"CallUUID": "gone-call"})
    assert any(
        "call=gone-call" in r.getMessage() and "before start" in r.getMessage()
        for r in caplog.records
    )


async def test_a_failing_reader_ends_only_its_call_and_is_logged_once(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A defect in the reader's dispatch (simulated: the protocol raising a bare RuntimeError
    on one message) ends that call cleanly: ``run_call`` returns, the flow is cancelled, the
    stream is closed."""
    from callflow.runtime import _dispatch

    real_parse_loaded = _dispatch.parse_loaded

    def parse_loaded(tag: str, obj: dict[str, object], text: str) -> object:
        if tag == "explode":
            raise RuntimeError("dispatch defect")
        return real_parse_loaded(tag, obj, text)

    monkeypatch.setattr(_dispatch, "parse_loaded", parse_loaded)
    cancelled = trio.Event()

    @flow("/waits", format=Format.MULAW_8K)
    async def waits(call: Call) -> None:
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    plivo_side, server_side = memory_transport_pair()
    await plivo_side.send(_start("reader-call"))
    await plivo_side.send(json.dumps({"event": "explode"}))
    with trio.fail_after(60):
        await run_call(waits, server_side)
    assert cancelled.is_set()
    assert server_side.close_code == 1000
    failures = [r for r in caplog.records if "reader failed" in r.getMessage()]
    assert len(failures) == 1
    assert "call=reader-call" in failures[0].getMessage()
    assert failures[0].exc_info is not None


def _start(call_id: str) -> str:
    """Plivo's ``start`` for a μ-law 8 kHz stream ``s1`` of ``call_id``."""
    return encode_event(
        Start(
            sequence_number=0,
            call_id=call_id,
            stream_id="s1",
            account_id="a1",
            tracks=("inbound",),
            encoding="audio/x-mulaw",
            sample_rate=8000,
        )
    )


async def test_media_nobody_listens_to_is_counted_not_checked(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A media frame is only counted while nobody listens (its fields are not read); once
    the flow listens, a malformed one is logged with the call id and the field."""
    bad_media = json.dumps(
        {
            "event": "media",
            "streamId": "s1",
            "media": {"track": "inbound", "timestamp": "1", "chunk": True, "payload": "AAAA"},
        }
    )
    counts: list[tuple[int, int]] = []

    @flow("/listens", format=Format.MULAW_8K)
    async def listens(call: Call) -> None:
        await call.wait_dtmf()
        counts.append((call.frames_received, call.protocol_errors))
        async with call.listen():
            await call.wait_dtmf()
        counts.append((call.frames_received, call.protocol_errors))

    plivo_side, server_side = memory_transport_pair()
    dtmf = json.dumps(
        {"event": "dtmf", "streamId": "s1", "dtmf": {"digit": "1", "track": "inbound"}}
    )

    async def plivo() -> None:
        await plivo_side.send(_start("media-call"))
        await plivo_side.send(bad_media)
        await plivo_side.send(dtmf)
        await trio.sleep(1)
        await plivo_side.send(bad_media)
        await plivo_side.send(dtmf)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(plivo)
        with trio.fail_after(60):
            await run_call(listens, server_side)
    assert counts == [(1, 0), (2, 1)]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "call=media-call" in warning
    assert "media.chunk" in warning
