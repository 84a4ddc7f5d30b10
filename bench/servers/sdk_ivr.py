"""The bench IVR written with the official ``plivo-stream-sdk``, served as its README shows.

Same behaviour as ``bench/flows/ivr.py``: on ``start`` play a prompt (each ≤ 12 288-byte
chunk as ``send_media`` followed by ``send_checkpoint``, as callflow's ``say`` sends it); a key
pressed while it plays sends ``clearAudio`` and, once ``clearedAudio`` comes back, the next
prompt; a key pressed after the last checkpoint was played starts the next prompt. The prompt
audio is the same μ-law bytes (read once at startup from the bench flow module); everything on
the call path is the SDK's own: pydantic events, ``send_media`` base64-encoding each chunk.

Served with ``websockets.serve(handler, host, port)`` on asyncio, as the SDK's "WebSockets
Library Example" does, with the library's defaults.

    python -m bench.servers.sdk_ivr --port 0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import sys
from pathlib import Path

import websockets
from plivo_stream import (
    ClearedAudioEvent,
    DtmfEvent,
    PlayedStreamEvent,
    PlivoWebsocketStreamingHandler,
    StartEvent,
)

from callflow import Format, load_flows

CHUNK_BYTES = 12288
"""Raw μ-law bytes per ``playAudio`` (16 384 base64 characters, Plivo's recommended most)."""

FLOWS = Path(__file__).resolve().parent.parent / "flows"


def _prompt_bytes() -> list[bytes]:
    flow = load_flows(FLOWS)[0]
    module = sys.modules[flow.handler.__module__]
    return [prompt.encoded(Format.MULAW_8K) for prompt in module.PROMPTS]


PROMPTS = _prompt_bytes()


class _Ivr:
    """Where one call of the IVR is: which prompt is next, whether one plays or is clearing,
    and the name of the last checkpoint sent."""

    def __init__(self) -> None:
        self.turn = 0
        self.playing = False
        self.clearing = False
        self.last = ""


async def create_handler(websocket: websockets.ServerConnection) -> None:
    """One call: the IVR on the SDK's callbacks."""
    handler = PlivoWebsocketStreamingHandler()
    names = itertools.count(1)
    state = _Ivr()

    async def play_next() -> None:
        audio = PROMPTS[state.turn % len(PROMPTS)]
        state.turn += 1
        state.playing = True
        for start in range(0, len(audio), CHUNK_BYTES):
            await handler.send_media(audio[start : start + CHUNK_BYTES])
            name = f"m{next(names)}"
            state.last = name
            await handler.send_checkpoint(name)

    @handler.on_start
    async def on_start(event: StartEvent) -> None:
        await play_next()

    @handler.on_dtmf
    async def on_dtmf(event: DtmfEvent) -> None:
        if state.playing:
            if not state.clearing:
                state.clearing = True
                await handler.send_clear_audio()
        else:
            await play_next()

    @handler.on_cleared_audio
    async def on_cleared_audio(event: ClearedAudioEvent) -> None:
        if state.clearing:
            state.clearing = False
            await play_next()

    @handler.on_played_stream
    async def on_played_stream(event: PlayedStreamEvent) -> None:
        if event.name == state.last:
            state.playing = False

    await handler.handle(websocket)


async def _main(host: str, port: int) -> None:
    async with websockets.serve(create_handler, host, port) as server:
        bound = next(iter(server.sockets)).getsockname()
        print(f"listening on http://{bound[0]}:{bound[1]}", flush=True)
        await asyncio.Future()  # run forever


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.host, args.port))


if __name__ == "__main__":
    main()
