"""End to end, for real: `serve_flows` on 127.0.0.1 (port 0) hosting the bundled flows/, a
signed answer webhook over HTTP, and a real WebSocket client speaking Plivo's messages."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
import trio_websocket

from callflow import load_flows
from callflow.protocol import Checkpoint, ClearAudio, PlayAudio
from callflow.server import ServerInfo, serve_flows
from callflow.testing import dial, open_plivo_websocket, stream_of
from flows.support import PROMPTS

AUTH_TOKEN = "MY_AUTH_TOKEN_0123456789abcdef"
FLOWS = Path(__file__).resolve().parents[2] / "flows"

pytestmark = pytest.mark.e2e


@pytest.fixture
async def server(nursery: trio.Nursery) -> AsyncIterator[ServerInfo]:
    info: ServerInfo = await nursery.start(
        lambda task_status: serve_flows(
            load_flows(FLOWS),
            host="127.0.0.1",
            port=0,
            auth_token=AUTH_TOKEN,
            task_status=task_status,
        )
    )
    return info


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


async def test_forged_answer_and_tokenless_websocket_are_refused(server: ServerInfo) -> None:
    async with httpx.AsyncClient() as client:
        forged = await client.post(
            f"{server.url}/support",
            data={"CallUUID": "forged", "From": "1", "To": "2"},
            headers={"X-Plivo-Signature-V3": "AAAA", "X-Plivo-Signature-V3-Nonce": "1"},
        )
        assert forged.status_code == 403
        unsigned = await client.post(f"{server.url}/echo", data={"CallUUID": "x"})
        assert unsigned.status_code == 403
    ws_url = f"ws://127.0.0.1:{server.port}/support/stream"
    with pytest.raises(trio_websocket.ConnectionRejected) as refused:
        async with open_plivo_websocket(ws_url):
            pass
    assert refused.value.status_code == 403


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
