"""An echo test: the caller hears their own voice back; ``#`` hangs up.

Answer URL: ``POST /echo``. L16 at 16 kHz (wideband), so the echo sounds as the caller does.
"""

from __future__ import annotations

import trio

from callflow import Call, Format, flow
from callflow.audio import Audio

PROMPTS = Audio.folder(__file__, "prompts")


@flow("/echo", format=Format.L16_16K)
async def echo(call: Call) -> None:
    await call.say(PROMPTS.echo)
    async with trio.open_nursery() as nursery:

        async def play_back() -> None:
            async with call.listen() as frames:
                async for frame in frames:
                    await call.play(Audio(frame, frames.sample_rate))

        nursery.start_soon(play_back)
        while await call.wait_dtmf() != "#":
            pass
        nursery.cancel_scope.cancel()
    await call.clear()
