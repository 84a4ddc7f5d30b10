"""``callflow serve --reload`` as a real process: an edited flow serves new calls, a live call
finishes on the code it started with, a file that fails to import keeps the old flows and is
logged once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from callflow.testing import dial

pytestmark = pytest.mark.e2e

FLOW = """
from callflow import Call, Format, flow


@flow("/a", format=Format.MULAW_8K)
async def a(call: Call) -> None:
    await call.send_dtmf("{digit}")


@flow("/slow", format=Format.MULAW_8K)
async def slow(call: Call) -> None:
    await call.wait_dtmf()
    await call.send_dtmf("{digit}")
"""


class _Log:
    def __init__(self) -> None:
        self.text = ""
        self._grew = trio.Event()

    async def read(self, stream: trio.abc.ReceiveStream) -> None:
        while chunk := await stream.receive_some():
            self.text += chunk.decode(errors="replace")
            self._grew.set()
            self._grew = trio.Event()

    async def wait_for(self, needle: str, count: int = 1) -> None:
        with trio.fail_after(20):
            while self.text.count(needle) < count:
                await self._grew.wait()


async def _sent_dtmf(url: str) -> str:
    with trio.fail_after(20):
        async with dial(url, send_media=False) as caller:
            await caller.hung_up()
    return caller.sent_dtmf


async def test_reload_serves_new_code_to_new_calls_only(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    module = folder / "a.py"
    module.write_text(FLOW.format(digit="1"))
    env = {k: v for k, v in os.environ.items() if k != "PLIVO_AUTH_TOKEN"}
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "callflow", "serve", str(folder), "--port", "0", "--reload"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    out, err = _Log(), _Log()
    try:
        async with trio.open_nursery() as nursery:
            assert process.stdout is not None
            assert process.stderr is not None
            nursery.start_soon(out.read, process.stdout)
            nursery.start_soon(err.read, process.stderr)
            await out.wait_for("listening on ")
            await err.wait_for("watching")
            base = out.text.split("listening on ", 1)[1].split()[0]
            assert await _sent_dtmf(f"{base}/a") == "1"
            async with dial(f"{base}/slow", send_media=False) as live:  # on the old code
                await trio.sleep(0.3)  # its flow has started and waits for a key
                module.write_text(FLOW.format(digit="2"))
                await err.wait_for("reloaded 2 flow(s)")
                assert await _sent_dtmf(f"{base}/a") == "2"
                await live.press("5")
                with trio.fail_after(20):
                    await live.hung_up()
            assert live.sent_dtmf == "1"

            module.write_text(FLOW.format(digit="3") + "\nbroken(\n")
            await err.wait_for("failed to import")
            assert await _sent_dtmf(f"{base}/a") == "2"  # the flows before go on
            module.write_text(FLOW.format(digit="4") + "\nbroken(\n\n")  # the same error
            await trio.sleep(1.5)
            assert err.text.count("failed to import") == 1
            module.write_text(FLOW.format(digit="4"))
            await err.wait_for("reloaded 2 flow(s)", count=2)
            assert await _sent_dtmf(f"{base}/a") == "4"
            nursery.cancel_scope.cancel()
    finally:
        process.terminate()
        with trio.move_on_after(15):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_replacing_the_routes_is_checked_whole_first() -> None:
    from callflow import Call, Format, flow
    from callflow.server._routes import Routes

    def make(path: str) -> object:
        @flow(path, format=Format.MULAW_8K)
        async def handler(call: Call) -> None:
            pass

        return handler

    old = make("/a")
    routes = Routes([old])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="taken by"):
        routes.replace([make("/b"), make("/b")])  # type: ignore[list-item]
    assert routes.get("/a") == ("answer", old)
    assert routes.get("/b") is None
    new = make("/b")
    routes.replace([new])  # type: ignore[list-item]
    assert routes.get("/a") is None
    assert routes.get("/b") == ("answer", new)
    assert routes.flows == [new]
