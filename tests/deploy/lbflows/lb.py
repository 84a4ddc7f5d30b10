"""Flows the load-balancer tests serve from three ``callflow serve`` processes."""

from __future__ import annotations

from pathlib import Path

from callflow import Call, Digits, Format, flow
from callflow.audio import Audio

PROMPTS = Audio.folder(Path(__file__).resolve().parents[3] / "flows", "prompts")


@flow("/lb/short", format=Format.MULAW_8K)
async def short(call: Call) -> None:
    """One short prompt, then the call ends: for spreading many calls."""
    await call.say(PROMPTS.goodbye)


@flow("/lb/long", format=Format.MULAW_8K)
async def long(call: Call) -> None:
    """About 6.7 s of prompts, then the call ends: for calls live across a drain."""
    await call.say(PROMPTS.menu)
    await call.say(PROMPTS.goodbye)


@flow("/lb/resume", format=Format.MULAW_8K)
async def resume(call: Call) -> None:
    """A 5 s prompt, then one key: ``1`` hears sales, anything else goodbye."""
    await call.say(PROMPTS.menu)
    key = await call.gather(max_digits=1, timeout=10.0)
    await call.say(
        PROMPTS.sales if isinstance(key, Digits) and key.value == "1" else PROMPTS.goodbye
    )
