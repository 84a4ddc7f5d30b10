"""Barge-in on the real server: the key's ``clearAudio`` is written by the read loop's own task,
from the dispatch that read the key, in the same pass: no wake of the call's reader task and
no scheduler pass in between (``Player._barge_in_clear_now``; docs/performance.md)."""

from __future__ import annotations

import functools

import pytest
import trio
from e2ekit import AUTH_TOKEN, FLOWS

from callflow import load_flows
from callflow.protocol import ClearAudio
from callflow.server import ServerInfo, serve_flows
from callflow.server._wswriter import SocketWriter
from callflow.testing import dial
from flows.support import PROMPTS


@pytest.mark.e2e
async def test_a_key_barge_in_is_cleared_by_the_dispatch_itself(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    writers: list[str] = []  # the task that wrote each clearAudio
    send_nowait = SocketWriter.send_nowait

    def spy(self: SocketWriter, message: str) -> bool | None:
        if '"clearAudio"' in message:
            writers.append(trio.lowlevel.current_task().name)
        return send_nowait(self, message)

    monkeypatch.setattr(SocketWriter, "send_nowait", spy)
    info: ServerInfo = await nursery.start(
        functools.partial(
            serve_flows, load_flows(FLOWS), host="127.0.0.1", port=0, auth_token=AUTH_TOKEN
        )
    )
    with trio.fail_after(30):
        async with dial(f"{info.url}/support", auth_token=AUTH_TOKEN) as caller:
            await caller.hears(PROMPTS.welcome)
            await trio.sleep(0.3)  # into the menu prompt, which a key may interrupt
            await caller.press("1")
            await caller.wait_for(ClearAudio)
            caller.skip_heard()
            await caller.hears(PROMPTS.sales)
    assert len(writers) == 1
    assert writers[0].endswith("ReadLoop.run")  # not the call's reader or flow task
