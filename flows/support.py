"""An IVR menu: welcome, a one-key menu with re-prompts, then sales or support.

Answer URL: ``POST /support``. μ-law 8 kHz, the format of the phone network itself.
"""

from __future__ import annotations

import trio

from callflow import Call, Format, flow
from callflow.audio import Audio

PROMPTS = Audio.folder(__file__, "prompts")

MENU_TIMEOUT_S = 5.0
"""Seconds to wait for a key after the menu prompt (Plivo GetDigits' default ``timeout``)."""


@flow("/support", format=Format.MULAW_8K)
async def support(call: Call) -> None:
    await call.say(PROMPTS.welcome)
    for _attempt in range(3):
        await call.say(PROMPTS.menu)
        key = None
        with trio.move_on_after(MENU_TIMEOUT_S):
            key = await call.wait_dtmf()
        if key == "1":
            await call.say(PROMPTS.sales)
            break
        if key == "2":
            await call.say(PROMPTS.support)
            break
        if key == "9":
            continue
        await call.say(PROMPTS.noinput if key is None else PROMPTS.invalid)
    await call.say(PROMPTS.goodbye)
