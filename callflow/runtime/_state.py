"""``CallState``: what every part of a :class:`~callflow.runtime.Call` shares: its identity,
its limits, whether and why it ended, and the one way to write to the socket it is on.

A ``Call`` is put together from parts, each in its own module: the playback engine
(``_playback.py``: ledger, checkpoints, clears, barge-in), what Plivo sends it
(``_inbound.py``: type-ahead keys, audio, status and machine-detection events), the DSL that
ties them together (``_call.py``), and the socket it is on (``_attach.py``: the transport and
the writer lock). Each part keeps its own state and wakes its own waiters when the call ends
(``_on_end``, chained through ``super()``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from callflow.observe import METRICS, NO_FLOW, FlowMetrics
from callflow.protocol import Format
from callflow.runtime._config import DEFAULT_CONFIG, CallInfo, RuntimeConfig
from callflow.runtime._errors import CallEnded
from callflow.runtime._sync import Signal
from callflow.voice import Renderer, Stt, TtsChoice, default_stt, default_tts

if TYPE_CHECKING:
    from callflow.runtime._timeouts import PhaseTimeouts


class CallState:
    """The state the parts of a call share; see the module docstring."""

    # Slots (no instance dict): only :class:`~callflow.runtime.Call` declares them, with
    # every part's ``_SLOTS`` (a part may not have slots of its own: they share a base).
    if not TYPE_CHECKING:  # (mypy would take () as this class's only attributes)
        __slots__ = ()
    _SLOTS: tuple[str, ...] = (
        "_config",
        "_ended",
        "_format",
        "_frame_watchers",
        "_key_watchers",
        "_metrics",
        "_stt",
        "_timeouts",
        "_tts",
        "_uninterruptible_says",
        "_wakeups",
        "ended_by_plivo",
        "info",
    )

    # The writer, as the parts see it (``Call`` hands each to its ``_attach.Line``; methods,
    # not bound methods kept per call: three of those are 192 bytes a call)

    def _write(self, message: str) -> Awaitable[None]:
        """Send one message to Plivo through the call's one writer (``_attach.Line.write``)."""
        raise NotImplementedError

    def _write_now(self, message: str) -> bool | None:
        """Write one message at once from synchronous code, when nothing else is being written
        (``_attach.Line.write_now``: True written, False the rest queued, None not done)."""
        raise NotImplementedError

    def _flush_writes(self) -> Awaitable[None]:
        """Write what a partial ``_write_now`` left queued (``_attach.Line.flush``)."""
        raise NotImplementedError

    _dtmf: list[str]
    """The type-ahead keys, oldest first (``_inbound.Inbound``)."""

    def __init__(self, info: CallInfo, config: RuntimeConfig | None) -> None:
        self.info = info
        """Ids, format, extra headers and answer-webhook params (:class:`CallInfo`)."""
        self._config = config or DEFAULT_CONFIG
        self._format: Format = info.format
        self._ended: CallEnded | None = None
        self.ended_by_plivo = False
        """Whether Plivo ended the stream (socket closed or ``stop``), not the flow."""
        self._wakeups: list[Signal] = []  # a list: an empty set is 216 bytes, this 56
        self._tts: TtsChoice | None = None  # the flow's engine (Call sets it); None: "auto"
        self._stt: Stt | None = None  # the flow's recognizer; None: the offline one
        self._key_watchers: list[Callable[[str], None]] = []
        self._uninterruptible_says = 0
        """``say`` calls playing now that no key can stop (``_playback.Player.say``); while
        any is, ``_inbound.Inbound`` applies ``uninterruptible_keys`` to each key."""
        self._frame_watchers: list[Callable[[npt.NDArray[np.int16]], None]] = []
        self._timeouts: PhaseTimeouts | None = None
        """The server's time limits, which also bound waits (``run_call`` sets them); ``None``:
        ``trio.move_on_at``."""
        self._metrics: FlowMetrics = METRICS.for_flow(NO_FLOW)
        """The flow's metrics (``run_call`` gives the flow's own); updated per event (a first
        chunk, a barge-in, an ack, an unreadable frame), never per media frame."""

    def _renderer(self) -> Renderer:
        """The call's text-to-speech engine with its render cache (the flow's ``tts=``).

        Raises:
            callflow.voice.TtsUnavailable: no engine is installed.
        """
        return (self._tts or default_tts()).renderer()

    def _recognizer(self) -> Stt:
        """The call's speech recognizer (the flow's ``stt=``, else the offline one).

        Raises:
            callflow.voice.SttUnavailable: no recognizer is installed.
        """
        if self._stt is None:
            self._stt = default_stt()
        return self._stt

    @property
    def call_id(self) -> str:
        """Plivo's CallUUID."""
        return self.info.call_id

    @property
    def ended(self) -> bool:
        """Whether the call is over."""
        return self._ended is not None

    def _raise_if_ended(self) -> None:
        if self._ended is not None:
            raise CallEnded(self._ended.call_id, self._ended.reason)

    async def _wait_or_end(self, event: Signal) -> None:
        """Wait for ``event``; the call ending wakes it too."""
        self._wakeups.append(event)
        try:
            await event.wait()
        finally:
            self._wakeups.remove(event)

    def _end(self, reason: str) -> None:
        """The call is over: wake every waiter; they raise CallEnded."""
        if self._ended is not None:
            return
        self._ended = CallEnded(self.call_id, reason)
        self._on_end()

    def _on_end(self) -> None:
        """Wake this part's waiters: the call has just ended (``_ended`` is set)."""
        for event in list(self._wakeups):
            event.set()
