"""The dev phone (``callflow serve --dev``) end to end in headless Chromium, driven over the
DevTools protocol: the page calls a flow over the real stream WebSocket, plays its prompt,
acks the checkpoint once played, sends the key pressed on its keypad, and plays the next
prompt. Plus: its μ-law encoder agrees with callflow's, and /dev is absent without --dev."""

from __future__ import annotations

import base64
import functools
import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import trio
import trio_websocket

from callflow import Call, Format, flow
from callflow.audio import beep, ulaw_decode, ulaw_encode, write_wav
from callflow.dev import dev_pages
from callflow.server import ServerInfo, serve_flows
from callflow.testing import open_plivo_websocket
from tests.support.debian import require_binary

pytestmark = pytest.mark.e2e

HELLO = beep(0.4, freq_hz=440, rate=8000)
NEXT = beep(0.6, freq_hz=880, rate=8000)
KEYS: list[str] = []

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--remote-debugging-port=0",
    "--window-size=1100,760",
]


@flow("/phone", format=Format.MULAW_8K)
async def phone(call: Call) -> None:
    await call.say(HELLO)
    KEYS.append(await call.wait_dtmf())
    await call.say(NEXT)


@flow("/wide", format=Format.L16_16K)
async def wide(call: Call) -> None:
    await call.say(beep(0.3, freq_hz=500, rate=16000))


class DevTools:
    """A small Chrome DevTools protocol client: one page target, commands and their results."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        ident = self.next_id
        await self.ws.send_message(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(await self.ws.get_message())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    async def js(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def until(self, expression: str) -> Any:
        """Poll ``expression`` in the page (every 50 ms, for at most 20 s) until truthy."""
        for _ in range(400):
            value = await self.js(expression)
            if value:
                return value
            await trio.sleep(0.05)
        raise AssertionError(f"never true in 20 s: {expression}")


@asynccontextmanager
async def _open_page(tmp_path: Path, url: str) -> AsyncIterator[DevTools]:
    """Headless Chromium showing ``url`` (a fresh profile, a fake microphone playing a
    tone), and a DevTools client on its page."""
    chromium = require_binary("chromium", package="chromium")
    microphone = tmp_path / "microphone.wav"
    write_wav(microphone, beep(2.0, freq_hz=700, rate=16000))
    profile = tmp_path / "profile"
    process = await trio.lowlevel.open_process(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--use-file-for-fake-audio-capture={microphone}",
            f"--user-data-dir={profile}",
            url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        active = profile / "DevToolsActivePort"
        for _ in range(300):  # Chromium writes its DevTools port here once it listens
            if active.exists() and active.read_text().strip():
                break
            await trio.sleep(0.1)
        port = int(active.read_text().split()[0])
        pages: list[dict[str, Any]] = []
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                targets = (await client.get(f"http://127.0.0.1:{port}/json/list")).json()
                pages = [t for t in targets if t["type"] == "page" and t["url"].startswith(url)]
                if pages:
                    break
                await trio.sleep(0.1)
        async with open_plivo_websocket(pages[0]["webSocketDebuggerUrl"]) as ws:
            tools = DevTools(ws)
            await tools.until("document.readyState === 'complete' && !!window.phone")
            yield tools
    finally:
        process.kill()
        await process.wait()


async def _serve(nursery: trio.Nursery, *, dev: bool) -> ServerInfo:
    flows = [phone, wide]
    info: ServerInfo = await nursery.start(
        functools.partial(
            serve_flows,
            flows,
            host="127.0.0.1",
            port=0,
            drain_timeout=1.0,
            pages=dev_pages(flows) if dev else None,
        )
    )
    return info


async def test_a_key_on_the_page_moves_the_flow_on_and_the_page_plays_the_next_prompt(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    KEYS.clear()
    info = await _serve(nursery, dev=True)
    async with _open_page(tmp_path, f"{info.url}/dev") as tools:
        flows = await tools.js("[...document.querySelectorAll('#flow option')].map(o => o.value)")
        assert flows == ["/phone", "/wide"]
        await tools.js("document.getElementById('flow').value = '/phone'")
        await tools.js("document.getElementById('call').click()")
        # the first prompt played: its checkpoint acked only after its 0.4 s
        await tools.until("phone.played.length >= 1")
        assert await tools.js("phone.state") == "in call: /phone"
        assert await tools.js("phone.log.some(l => l.includes('playAudio 0.40 s'))")
        assert await tools.js("phone.log.some(l => l.includes('microphone on'))")
        await tools.js("document.querySelector('#keypad [data-key=\"1\"]').click()")
        await tools.until("phone.log.some(l => l.includes('playAudio 0.60 s'))")
        assert KEYS == ["1"]  # the flow got the key and moved on
        await tools.until("phone.state === 'call ended'")
        played = await tools.js("phone.played")
        assert len(played) >= 2  # the second prompt's checkpoint acked: the page played it
        events = await tools.js("phone.sent")
        assert events[0] == "start"
        assert events.count("media") >= 20  # 20 ms frames all along the call
        assert "dtmf" in events
        assert events.count("playedStream") == len(played)
        shot = await tools.call("Page.captureScreenshot", format="png")
        (tmp_path / "dev-phone.png").write_bytes(base64.b64decode(shot["data"]))
        assert (tmp_path / "dev-phone.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_the_page_encodes_mulaw_as_callflow_does(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    info = await _serve(nursery, dev=True)
    async with _open_page(tmp_path, f"{info.url}/dev") as tools:
        samples = np.linspace(-32768, 32767, 4001).astype(np.int16)
        page = await tools.js(f"{json.dumps(samples.tolist())}.map(ulawEncode)")
        assert bytes(page) == ulaw_encode(samples)
        decoded = await tools.js("[...Array(256).keys()].map(ulawDecode)")
        assert decoded == ulaw_decode(bytes(range(256))).tolist()


async def test_no_dev_page_without_dev(nursery: trio.Nursery) -> None:
    info = await _serve(nursery, dev=False)
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{info.url}/dev")
    assert response.status_code == 404
