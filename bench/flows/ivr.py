"""The bench IVR, as callflow serves it: a prompt with barge-in, a key, the next prompt, forever.

Answer URL ``/ivr``, stream ``/ivr/stream``, μ-law 8 kHz. The two prompts are 3 s of tones
made at import (so every call plays the same :class:`Audio` values, encoded once). The flow
runs until the caller hangs up.

Barge-in is the DSL's: ``say(prompt, barge_in=True)`` stops the prompt on a key (``clearAudio``,
then ``clearedAudio``) and leaves the key in the type-ahead buffer, so the ``wait_dtmf()`` after
it takes either that key or the one pressed after the prompt played out.
"""

from __future__ import annotations

from callflow import Call, Format, flow
from callflow.audio import Audio, beep

PROMPT_S = 3.0
"""Length of each prompt, in seconds."""


def _prompt(freq_hz: float) -> Audio:
    """``PROMPT_S`` seconds of 0.25 s beeps at ``freq_hz`` Hz with 0.25 s gaps."""
    tone = beep(0.25, freq_hz)
    gap = Audio.silence(0.25)
    return Audio.concat([tone, gap] * round(PROMPT_S / 0.5))


PROMPTS = (_prompt(440.0), _prompt(660.0))
"""The prompts the flow alternates between (also what ``bench.servers.sdk_ivr`` plays)."""


@flow("/ivr", format=Format.MULAW_8K)
async def ivr(call: Call) -> None:
    """Prompt (barge-in on); a key (the one that interrupted it, or the next); loop."""
    turn = 0
    while True:
        await call.say(PROMPTS[turn % len(PROMPTS)], barge_in=True)
        await call.wait_dtmf()
        turn += 1
