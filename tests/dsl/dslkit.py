"""Shared pieces of the DSL tests: distinct prompts, caller "speech", and small flow helpers.

Every prompt is a tone of its own frequency, so ``caller.hears(PROMPT)`` tells exactly which
prompt played (the fake compares wire bytes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from callflow import Call, Flow, Format, flow
from callflow.audio import Audio, beep

RATE = 8000
CHUNK_BYTES = 12160
"""One ``playAudio`` chunk on a μ-law 8 kHz stream: 12 288 raw bytes fit 16 KB of base64,
rounded down to whole 20 ms frames (PROTOCOL.md §4)."""
CHUNK_S = CHUNK_BYTES / RATE
"""1.52 s: the granularity ``Playback.heard_s`` promises."""


def tone(seconds: float, freq_hz: float) -> Audio:
    return beep(seconds, freq_hz=freq_hz, rate=RATE)


PROMPT = tone(1.0, 440)
PROMPT_2 = tone(1.0, 480)
PROMPT_3 = tone(1.0, 500)
NO_INPUT = tone(0.6, 560)
NO_INPUT_2 = tone(0.6, 600)
INVALID = tone(0.6, 660)
INVALID_2 = tone(0.6, 700)
WELCOME = tone(2.0, 760)
GOODBYE = tone(0.4, 820)
LONG = tone(10.0, 350)


def voice(seconds: float) -> Audio:
    """Caller "speech": a loud tone, far above the VAD's -35 dBFS threshold."""
    return beep(seconds, freq_hz=300, rate=RATE, level=0.5)


def make_flow(handler: Callable[[Call], Awaitable[Any]], fmt: Format = Format.MULAW_8K) -> Flow:
    """``handler`` as a flow at ``/dsl``."""

    async def run(call: Call) -> None:
        await handler(call)

    return flow("/dsl", format=fmt)(run)
