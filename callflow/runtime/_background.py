"""Background audio that stops with its scope: ``async with call.playing(music, loop=True):``.

A task in the block's own nursery feeds the source to Plivo (``play``, so never more than
``RuntimeConfig.max_lead_s`` ahead); when the block exits, by return, exception or
cancellation, the task is cancelled and whatever is still queued at Plivo is cleared
(``clearAudio``, shielded and bounded), so no audio of the block plays on after it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from callflow.runtime._errors import CallEnded
from callflow.runtime._sources import AudioSource, load_wav

if TYPE_CHECKING:
    from callflow.runtime._call import Call


@contextlib.asynccontextmanager
async def playing(call: Call, source: AudioSource, *, loop: bool) -> AsyncIterator[None]:
    if isinstance(source, str | os.PathLike):
        source = load_wav(Path(source))  # a missing or bad file raises here, not in the task
    if loop and isinstance(source, AsyncIterable):
        raise ValueError("loop=True needs a source that can be played again, not a stream")
    call._raise_if_ended()
    error: Exception | None = None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_feed, call, source, loop)
            try:
                yield
            except Exception as exc:
                # The block's own error leaves as it is, not wrapped in the nursery's
                # exception group (a hangup stays a plain CallEnded).
                error = exc
            finally:
                nursery.cancel_scope.cancel()
    finally:
        await call._clear_on_cancel(call._clear_epoch)  # shielded, bounded; only if queued
    if error is not None:
        raise error


async def _feed(call: Call, source: AudioSource, loop: bool) -> None:
    with contextlib.suppress(CallEnded):  # the block sees the hangup itself
        while await call.play(source) > 0 and loop:
            pass
        await call.checkpoint()  # so once it has all played there is nothing left to clear
