"""End to end, for real: `serve_flows` on 127.0.0.1 (port 0) hosting the bundled flows/, called
by callflow's own offline caller (`callflow.testing.dial`). The refusals, and the same rules
checked with a WebSocket client that is not callflow's, are in test_e2e_conformance.py."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
from e2ekit import AUTH_TOKEN, FLOWS

from callflow import load_flows
from callflow.protocol import Checkpoint, ClearAudio, PlayAudio
from callflow.server import ServerInfo
from callflow.testing import dial, stream_of
from flows.support import PROMPTS

pytestmark = pytest.mark.e2e


async def test_menu_call_over_real_sockets(server: ServerInfo) -> None:
    with trio.fail_after(60):
        async with dial(f"{server.url}/support", auth_token=AUTH_TOKEN) as caller:
            await caller.hears(PROMPTS.welcome)
            await trio.sleep(0.5)  # half a second into the menu prompt
            await caller.press("1")  # barge-in: the menu stops, the key is the choice
            await caller.wait_for(ClearAudio)
            assert 0.3 < caller.skip_heard() < 1.5
            await caller.hears(PROMPTS.sales)
            await caller.hears(PROMPTS.goodbye)
            assert await caller.hung_up() == 1000
    assert not caller.protocol_errors
    names = []
    for item in caller.received:
        message = json.loads(item.text)
        assert message["event"] in {"playAudio", "checkpoint", "clearAudio", "sendDTMF"}
        if message["event"] == "clearAudio":
            assert message == {"event": "clearAudio", "streamId": caller.stream_id}
        assert len(item.text.encode()) <= 65536
        if isinstance(item.command, PlayAudio):
            assert message["media"]["contentType"] == "audio/x-mulaw"
            assert message["media"]["sampleRate"] == 8000
        if isinstance(item.command, Checkpoint):
            assert message["streamId"] == caller.stream_id
            names.append(message["name"])
    assert names
    assert len(set(names)) == len(names)


async def test_each_answer_url_returns_its_flows_format(server: ServerInfo) -> None:
    for flow in load_flows(FLOWS):
        async with dial(
            f"{server.url}{flow.path}", auth_token=AUTH_TOKEN, send_media=False
        ) as caller:
            assert caller.format is flow.format
            await caller.hang_up()


async def test_get_answer_is_signed_too(server: ServerInfo) -> None:
    async with dial(
        f"{server.url}/echo", auth_token=AUTH_TOKEN, method="GET", send_media=False
    ) as caller:
        await caller.hang_up()
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{server.url}/echo", params={"CallUUID": "x"})
    assert response.status_code == 403
    with pytest.raises(Exception, match="Stream"):
        stream_of(b"<Response/>")
