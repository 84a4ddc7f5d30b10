"""The offline caller behind ``callflow dial``: call a running server as Plivo would, from a
terminal, hear what it plays (saved as WAV) and press keys (scripted or typed)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import trio

from callflow.audio import write_wav
from callflow.protocol import Checkpoint, ClearAudio, PlayAudio, SendDTMF
from callflow.testing._dial import dial
from callflow.testing._fake import FakePlivo, Received


def _describe(item: Received, fake: FakePlivo) -> str:
    command = item.command
    if isinstance(command, PlayAudio):
        raw = len(command.payload) // 4 * 3 - command.payload[-2:].count("=")
        return f"playAudio  {fake.format.duration_s(raw):.2f} s of {command.content_type}"
    if isinstance(command, Checkpoint):
        return f"checkpoint {command.name}"
    if isinstance(command, ClearAudio):
        return "clearAudio (barge-in: queued audio dropped)"
    if isinstance(command, SendDTMF):
        return f"sendDTMF   {command.digits}"
    return type(command).__name__  # pragma: no cover - parse_command knows no other


async def _report(fake: FakePlivo, began: float, say: Callable[[str], None]) -> None:
    """Print each message callflow sends, as it arrives."""
    shown = 0
    while True:
        for item in fake.received[shown:]:
            say(f"{item.time - began:7.2f}s  ← {_describe(item, fake)}")
        shown = len(fake.received)
        if fake.hung_up_flag:
            return
        await fake._wait_heard_change()


async def _typed_keys(fake: FakePlivo, began: float, say: Callable[[str], None]) -> None:
    """Keys typed on stdin, a line at a time; an empty line or ``q`` hangs up."""
    say("type keys (0-9 * # A-D) and Enter to press them; an empty line hangs up")
    while True:
        line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        keys = line.strip().upper()
        if not keys or keys == "Q":
            await fake.hang_up()
            return
        say(f"{trio.current_time() - began:7.2f}s  → dtmf {keys}")
        await fake.press(keys)


async def run_caller(
    answer_url: str,
    *,
    keys: Sequence[str] | None,
    auth_token: str | None = None,
    out: Path | None = None,
    max_s: float = 120.0,
    say: Callable[[str], None] = print,
) -> int:
    """Call ``answer_url`` and play the caller; return the close code (0 if none).

    With ``keys`` (groups such as ``["1", "1234#"]``) each group is pressed once playback
    has gone idle (the prompt before it was heard); then the caller waits for the flow to
    end. Without ``keys`` the keys are read from stdin. The call is hung up after ``max_s``
    seconds. What the caller heard is written to ``out`` (16-bit mono WAV) when given.
    """
    began = trio.current_time()
    async with dial(answer_url, auth_token=auth_token) as fake:
        say(f"connected: {fake.format.content_type}, call {fake.call_id}")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_report, fake, began, say)
            with trio.move_on_after(max_s) as limit:
                if keys is None:
                    nursery.start_soon(_typed_keys, fake, began, say)
                else:
                    for group in keys:
                        await fake.hears(None)
                        if fake.hung_up_flag:
                            break
                        say(f"{trio.current_time() - began:7.2f}s  → dtmf {group}")
                        await fake.press(group)
                await fake.hung_up()
            if limit.cancelled_caught:
                say(f"{trio.current_time() - began:7.2f}s  hanging up after {max_s:.0f} s")
                await fake.hang_up()
            nursery.cancel_scope.cancel()
    say(
        f"call ended (close code {fake.close_code}); heard {fake.heard_s:.2f} s, "
        f"{len(fake.cleared)} barge-in clear(s)"
    )
    if out is not None:
        write_wav(out, fake.heard)
        say(f"wrote what the caller heard to {out}")
    return fake.close_code or 0
