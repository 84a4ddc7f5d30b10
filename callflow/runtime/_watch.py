"""``TriggerWatch``: the reader's hook that calls back when a barge-in trigger fires.

A ``say`` with barge-in (and ``gather``'s speech wait) watches the call's inbound events for
its :class:`~callflow.runtime._results.BargeIn`: a key it matches, or the start of speech by
the VAD. The watch is one slotted object whose bound methods sit in the call's
``_key_watchers`` / ``_frame_watchers`` lists while it is on: a prompt in flight lives for
seconds, through the collector's young generations, so what it allocates is walked by each
of their collections and promoted to the old one (docs/performance.md, "The tail"). One
object here replaces four closures and their cells.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from callflow.runtime._results import BargeIn
from callflow.runtime._state import CallState
from callflow.runtime._vad import Vad

__all__ = ["TriggerWatch"]


class TriggerWatch:
    """Calls ``interrupt(cause)`` from the reader each time ``trigger`` fires on ``call``: a
    DTMF key it matches (``cause`` is the key, ``"0"``-``"9"``, ``"*"``, ``"#"``,
    ``"A"``-``"D"``) or the VAD's start of speech (``cause`` is ``"speech"``), until
    :meth:`stop`.
    """

    __slots__ = ("_call", "_interrupt", "_on_frame", "_on_key", "_rate", "_trigger", "_vad")

    def __init__(self, call: CallState, trigger: BargeIn, interrupt: Callable[[str], None]) -> None:
        self._call = call
        self._trigger = trigger
        self._interrupt = interrupt
        self._rate = call._format.sample_rate
        settings = trigger.vad
        self._vad = Vad(settings) if settings is not None else None
        self._on_key: Callable[[str], None] | None = None
        self._on_frame: Callable[[npt.NDArray[np.int16]], None] | None = None
        if trigger.keys:
            self._on_key = self.on_key
            call._key_watchers.append(self._on_key)
        if self._vad is not None:
            self._on_frame = self.on_frame
            call._frame_watchers.append(self._on_frame)

    def on_key(self, digit: str) -> None:
        """A DTMF key arrived (``digit``, one character)."""
        if self._trigger.matches_key(digit):
            self._interrupt(digit)

    def on_frame(self, frame: npt.NDArray[np.int16]) -> None:
        """An inbound audio frame arrived (20 ms of int16 samples at the stream's rate)."""
        if self._vad is not None and self._vad.push(frame, self._rate) == "start":
            self._interrupt("speech")

    def stop(self) -> None:
        """Stop watching (idempotent)."""
        call, on_key, on_frame = self._call, self._on_key, self._on_frame
        self._on_key = self._on_frame = None
        if on_key is not None and on_key in call._key_watchers:
            call._key_watchers.remove(on_key)
        if on_frame is not None and on_frame in call._frame_watchers:
            call._frame_watchers.remove(on_frame)
