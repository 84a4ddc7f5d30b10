"""``run_call``'s log lines name the call before Plivo's ``start`` does (in-memory, virtual
time)."""

from __future__ import annotations

import json
import logging

import pytest
import trio
import trio.testing

from callflow import Call, Format, flow
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
