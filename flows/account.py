"""An account line in text only: "press or say", and the figures spoken as they are.

Answer URL: ``POST /account``. μ-law at 8 kHz. Every prompt is text: the fixed ones are
declared in ``TEXT`` (``callflow prompts build flows/`` renders them ahead of time; without
that the first call renders them once), the figures that change per call are synthesised
while the call runs.

* The caller presses ``1`` or says "balance" for the balance, ``2`` or "payments" for the last
  payment, ``0`` or "agent" for an agent (this demo has none, and says so).
* Anything else, or nothing, is asked again (three tries in all).
"""

from __future__ import annotations

from callflow import Call, Digits, Format, Speech, flow
from callflow.voice import Prompts, Text

TEXT = Prompts(
    welcome="Welcome to Example Bank.",
    menu=(
        "For your balance, press 1 or say balance. For your last payment, press 2 or say "
        "payments. For an agent, press 0 or say agent."
    ),
    sorry="Sorry, I did not get that.",
    nothing="I did not hear anything.",
    agent="All our agents are busy. Please call again later.",
    goodbye="Thank you for calling. Goodbye.",
)

CHOICES = {"1": "balance", "2": "payments", "0": "agent"}

DEMO_BALANCE_CENTS = 123456
"""The balance this demo reads out. A real line would look it up for the caller."""


def dollars(cents: int) -> str:
    """``123456`` → ``"1234 dollars and 56 cents"``: words an engine reads well."""
    whole, rest = divmod(cents, 100)
    return f"{whole} dollars and {rest} cents" if rest else f"{whole} dollars"


@flow("/account", format=Format.MULAW_8K)
async def account(call: Call) -> None:
    await call.say(TEXT.welcome, barge_in=True)
    answer = await call.ask(TEXT.menu, CHOICES, no_input=TEXT.nothing, invalid=TEXT.sorry)
    match answer:
        case Digits("1") | Speech("balance"):
            # A figure that changes per call: synthesised now, kept out of the render cache.
            await call.say(Text(f"Your balance is {dollars(DEMO_BALANCE_CENTS)}.", cache=False))
        case Digits("2") | Speech("payments"):
            await call.say(
                Text(f"Your last payment, of {dollars(4210)}, arrived on May 3rd.", cache=False)
            )
        case Digits("0") | Speech("agent"):
            await call.say(TEXT.agent)
        case _:
            pass  # NoInput or Invalid after three tries
    await call.say(TEXT.goodbye)
