"""A welcome, a one-key menu with re-prompts, then sales or support, and goodbye.

Answer URL: ``POST /hello``. μ-law 8 kHz, the format of the phone network itself. A key
pressed during any prompt interrupts it (barge-in) and counts as the choice.
"""

from callflow import Call, Format, flow
from callflow.audio import Audio

from .common import CHOICES

PROMPTS = Audio.folder(__file__, "prompts")


@flow("/hello", format=Format.MULAW_8K)
async def hello(call: Call) -> None:
    await call.say(PROMPTS.welcome, barge_in=True)
    choice = "repeat"
    while choice == "repeat":
        choice = await call.menu(
            PROMPTS.menu,
            CHOICES,
            retries=3,
            timeout=5.0,
            no_input=PROMPTS.noinput,
            invalid=PROMPTS.invalid,
        )
    if choice == "sales":
        await call.say(PROMPTS.sales)
    elif choice == "support":
        await call.say(PROMPTS.support)
    await call.say(PROMPTS.goodbye)
