"""A small bank line: a menu, PIN entry, barge-in by key and by speech, and voicemail.

Answer URL: ``POST /bank``. L16 at 8 kHz.

* The welcome stops as soon as the caller presses a key or starts talking. A key pressed
  during it is kept and answers the menu, whose prompt is then skipped.
* ``1``: the caller enters a four-digit PIN (three tries; the digits never reach a log line),
  then hears the balance.
* ``2``: voicemail. Talking over the instructions stops them and starts the recording at
  once; otherwise a beep starts it. ``#``, 3 s of silence, 60 s or hanging up ends it. A
  message with speech in it is saved as ``<CallUUID>.wav`` in the folder named by
  ``CALLFLOW_VOICEMAIL_DIR`` (default: ``callflow-voicemail`` in the system's temp folder).
"""

from __future__ import annotations

import hmac
import os
import re
import tempfile
from pathlib import Path

import trio

from callflow import BargeIn, Call, Digits, Format, Recording, flow
from callflow.audio import Audio

PROMPTS = Audio.folder(__file__, "prompts")  # shared: noinput, invalid, goodbye
BANK = Audio.folder(__file__, "prompts/bank")  # this flow's own prompts

DEMO_PIN = "1234"
"""The PIN this demo accepts. A real line would check it against the bank's own records."""

PIN_TRIES = 3

VOICEMAIL_DIR_ENV = "CALLFLOW_VOICEMAIL_DIR"
"""The environment variable naming the folder voicemails are saved in."""


def voicemail_dir() -> Path:
    """Where voicemails go: ``$CALLFLOW_VOICEMAIL_DIR``, else a folder in the temp dir."""
    folder = os.environ.get(VOICEMAIL_DIR_ENV)
    return Path(folder) if folder else Path(tempfile.gettempdir()) / "callflow-voicemail"


async def balance(call: Call) -> None:
    """Ask for the PIN (up to three tries), then say the balance."""
    for _ in range(PIN_TRIES):
        result = await call.gather(
            BANK.pin, max_digits=4, min_digits=4, timeout=5.0, sensitive=True
        )
        if isinstance(result, Digits) and hmac.compare_digest(result.value, DEMO_PIN):
            await call.say(BANK.balance)
            return
        await call.say(BANK.pin_wrong)  # wrong, too short, or nothing at all
    await call.say(BANK.locked)


async def voicemail(call: Call) -> None:
    """Record a message and save it, if the caller said anything."""
    instructions = await call.say(BANK.message, barge_in="speech")
    # Talking over the instructions skips them, and the beep: the caller is already speaking.
    recording = await call.record(
        max_s=60.0, silence_s=3.0, finish_on_key="#", beep=instructions.completed
    )
    if not recording.speech:
        await call.say(BANK.nomessage)
        return
    await trio.to_thread.run_sync(save_voicemail, recording, call.call_id)
    await call.say(BANK.saved)  # after a hangup this raises CallEnded: that's fine


def save_voicemail(recording: Recording, call_id: str) -> Path:
    """Write ``recording`` as ``<call_id>.wav`` in :func:`voicemail_dir`; return the path."""
    folder = voicemail_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{re.sub(r'[^A-Za-z0-9-]', '_', call_id)}.wav"
    recording.save(path)
    return path


@flow("/bank", format=Format.L16_8K)
async def bank(call: Call) -> None:
    await call.say(BANK.welcome, barge_in=BargeIn(keys=True, speech=True))
    await call.menu(
        BANK.menu,
        {"1": balance, "2": voicemail},  # sub-flows: the chosen one runs
        retries=3,
        no_input=PROMPTS.noinput,
        invalid=PROMPTS.invalid,
    )
    await call.say(PROMPTS.goodbye)
