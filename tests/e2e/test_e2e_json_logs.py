"""``--log-format json`` on the real server (127.0.0.1): one JSON object per line, the call's
ids and flow path on every line of the call (also those logged by the shared read loop and by
flow code), sensitive digits still masked, outside text kept on its line."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterator

import pytest
import trio
from e2ekit import AUTH_TOKEN

from callflow import Call, Digits, Format, flow
from callflow.observe import JsonFormatter
from callflow.protocol import ClearAudio
from callflow.server import ServerInfo, serve_flows
from callflow.testing import dial
from flows.support import PROMPTS

pytestmark = pytest.mark.e2e

PIN = "4937"
flow_log = logging.getLogger("callflow.test.pinflow")


@flow("/json-pin", format=Format.MULAW_8K)
async def pin_flow(call: Call) -> None:
    result = await call.gather(PROMPTS.menu, max_digits=4, timeout=5.0, sensitive=True)
    flow_log.info("the flow got %r", result)
    assert isinstance(result, Digits)
    await call.say(PROMPTS.goodbye)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def json_lines() -> Iterator[list[str]]:
    handler = _Lines()
    logger = logging.getLogger("callflow")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_every_line_of_a_call_names_it(nursery: trio.Nursery, json_lines: list[str]) -> None:
    info: ServerInfo = await nursery.start(
        functools.partial(serve_flows, [pin_flow], host="127.0.0.1", port=0, auth_token=AUTH_TOKEN)
    )
    with trio.fail_after(30):
        async with dial(f"{info.url}/json-pin", auth_token=AUTH_TOKEN) as caller:
            await trio.sleep(0.3)
            await caller.send_raw("{not json\nFORGED LINE")  # read by the shared read loop
            await caller.press(PIN)
            await caller.wait_for(ClearAudio)  # the keys interrupted the prompt
            caller.skip_heard()
            await caller.hears(PROMPTS.goodbye)
            await caller.hung_up()
        await trio.sleep(0.2)
    call_id, stream_id = caller.call_id, caller.stream_id

    entries = [json.loads(line) for line in json_lines]  # each line is one JSON object
    assert all("\n" not in line for line in json_lines)
    assert all({"ts", "level", "logger", "message"} <= e.keys() for e in entries)
    of_call = [e for e in entries if e.get("call_id") == call_id]
    assert len(of_call) >= 5
    # from `start` on, every line of the call carries its stream id and flow path
    started = next(i for i, e in enumerate(of_call) if e["stream_id"] is not None)
    assert all(e["stream_id"] == stream_id and e["flow"] == "/json-pin" for e in of_call[started:])
    # lines the call logs mention no other call, and every line naming the call is its own
    assert not [e for e in entries if call_id in e["message"] and e.get("call_id") != call_id]
    unreadable = [e for e in of_call if "unreadable message" in e["message"]]
    assert len(unreadable) == 1
    assert unreadable[0]["stream_id"] == stream_id
    assert "FORGED LINE" in unreadable[0]["message"]  # kept inside its own line
    flow_lines = [e for e in of_call if e["logger"] == "callflow.test.pinflow"]
    assert len(flow_lines) == 1
    assert "****" in flow_lines[0]["message"]
    assert not [line for line in json_lines if PIN in line]
