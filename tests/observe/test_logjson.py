"""JsonFormatter: one bounded JSON object per record, with the call context when there is one."""

from __future__ import annotations

import json
import logging
import sys

import trio
from hypothesis import given
from hypothesis import strategies as st

from callflow.observe import CALL_CONTEXT, JsonFormatter, bind_call
from callflow.observe._logjson import MAX_EXC_CHARS, MAX_ID_CHARS, MAX_MESSAGE_CHARS


def record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = sys.exc_info() if exc else None
    return logging.LogRecord("callflow.call", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_a_line_outside_any_call_has_no_call_keys() -> None:
    entry = json.loads(JsonFormatter().format(record("hello %s", "there")))
    assert entry["message"] == "hello there"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "callflow.call"
    assert entry["ts"].endswith("Z")
    assert "call_id" not in entry


def test_the_bound_call_is_on_the_line_and_reset_restores() -> None:
    token = bind_call(call_id="c-1", flow="/ivr")
    try:
        entry = json.loads(JsonFormatter().format(record("x")))
    finally:
        CALL_CONTEXT.reset(token)
    assert (entry["call_id"], entry["stream_id"], entry["flow"]) == ("c-1", None, "/ivr")
    assert CALL_CONTEXT.get() is None


async def test_tasks_started_after_binding_inherit_it() -> None:
    seen: list[str | None] = []

    async def child() -> None:
        ctx = CALL_CONTEXT.get()
        seen.append(ctx.call_id if ctx else None)

    token = bind_call(call_id="c-2", stream_id="s-2", flow="/ivr")
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)
    finally:
        CALL_CONTEXT.reset(token)
    assert seen == ["c-2"]


def test_long_values_are_bounded() -> None:
    token = bind_call(call_id="u" * 10_000)
    try:
        try:
            raise ValueError("v" * 100_000)
        except ValueError:
            line = JsonFormatter().format(record("%s", "m" * 100_000, exc=True))
    finally:
        CALL_CONTEXT.reset(token)
    entry = json.loads(line)
    assert len(entry["message"]) == MAX_MESSAGE_CHARS
    assert len(entry["call_id"]) == MAX_ID_CHARS
    assert len(entry["exc"]) == MAX_EXC_CHARS
    assert len(line) < MAX_MESSAGE_CHARS + MAX_EXC_CHARS + 2 * MAX_ID_CHARS + 500


@given(st.text())
def test_any_text_stays_on_one_line_and_round_trips(text: str) -> None:
    line = JsonFormatter().format(record("%s", text))
    assert "\n" not in line
    assert "\r" not in line
    assert json.loads(line)["message"] == text[:MAX_MESSAGE_CHARS] or len(text) > MAX_MESSAGE_CHARS
