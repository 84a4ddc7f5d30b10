"""Checkpoints of a call: ``checkpoint()``, the ledger of what Plivo has played, and the waits on
its acks.

A checkpoint goes out as ``{"event":"checkpoint","streamId":…,"name":…}``; Plivo answers
``playedStream`` with the same name once everything queued before it has played, and never
answers one whose audio a ``clearAudio`` dropped (PROTOCOL.md §2, §3). The
:class:`~callflow.runtime._ledger.Ledger` turns the acks into positions; the waits here end
on an ack, on a clear, on an overdue ack (:mod:`callflow.runtime._ackbound`) or at the end of
the call. :class:`~callflow.runtime._playback.Player` builds ``say`` and ``clear`` on them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio

from callflow.protocol import Checkpoint, encode
from callflow.runtime._ackbound import AckBound
from callflow.runtime._config import CallInfo, RuntimeConfig
from callflow.runtime._ledger import Ledger, Mark
from callflow.runtime._sync import Signal

__all__ = ["Checkpoints"]

log = logging.getLogger("callflow.call")


class Checkpoints(AckBound):
    """The checkpoint part of a :class:`~callflow.runtime.Call` (module docstring)."""

    if not TYPE_CHECKING:  # (mypy would take () as this class's only attributes)
        __slots__ = ()
    _SLOTS: tuple[str, ...] = (
        "_auto_marks",
        "_chosen_marks",
        "_ledger",
        "_mark_results",
        "_mark_sent_at",
        "_mark_waiters",
        "_progress",
    )

    if TYPE_CHECKING:  # the clear that ends a wait whose ack is overdue: Player's

        async def _send_clear(self, cause: str = "cleared") -> Signal: ...

        async def _wait_cleared(self, done: Signal) -> None: ...

    def __init__(self, info: CallInfo, config: RuntimeConfig | None) -> None:
        super().__init__(info, config)
        # checkpoint names: callflow's own are cf1 … cf{_auto_marks}; only the ones a flow
        # chose are kept, so a long call's bookkeeping does not grow with every checkpoint
        self._auto_marks = 0
        self._chosen_marks: set[str] | None = None
        self._ledger = Ledger()
        self._mark_waiters: dict[str, Signal] = {}
        self._mark_results: dict[str, bool] = {}
        self._mark_sent_at: dict[str, float] = {}  # for the checkpoint round-trip metric
        self._progress = Signal()  # set on every ack/clear; replaced after

    @property
    def queued_s(self) -> float:
        """Upper bound, in seconds, of the audio queued at Plivo and not yet confirmed played."""
        return self._ledger.queued_s

    async def checkpoint(self, name: str | None = None) -> bool:
        """Wait until everything queued so far has played.

        Sends ``{"event":"checkpoint","streamId":…,"name":…}`` and waits for Plivo's
        ``playedStream`` with that name (PROTOCOL.md §3).

        Args:
            name: the checkpoint's name; unique per stream. ``None`` picks one.

        Returns:
            True when played; False when the audio before it was cleared (Plivo never acks a
            cleared checkpoint, PROTOCOL.md §2), also by callflow when no ack came in time
            (``RuntimeConfig.ack_grace_s``, :mod:`callflow.runtime._ackbound`).

        Raises:
            ValueError: ``name`` was used before on this stream.
            CallEnded: the call is over.
        """
        if name is not None and self._mark_name_used(name):
            raise ValueError(f"checkpoint name {name!r} already used on this stream")
        return await self._wait_mark(await self._send_mark(name, waited=True))

    async def _wait_for_room(self, seconds: float) -> None:
        """Wait until sending ``seconds`` more keeps the queue within ``max_lead_s``."""
        ledger = self._ledger
        while ledger.queued_s > 0 and ledger.queued_s + seconds > self._config.max_lead_s:
            if ledger.unmarked_s > 0 and ledger.marks_pending == 0:
                await self._send_mark(waited=False)
            self._raise_if_ended()
            await self._wait_or_give_up(self._progress)

    def _mark_name_used(self, name: str) -> bool:
        """Whether checkpoint ``name`` was sent on this stream already (by the flow, or as
        one of callflow's own ``cf<n>``)."""
        if self._chosen_marks is not None and name in self._chosen_marks:
            return True
        digits = name[2:]
        return (
            name.startswith("cf")
            and digits.isascii()
            and digits.isdigit()
            and not digits.startswith("0")
            and int(digits) <= self._auto_marks
        )

    async def _send_mark(self, name: str | None = None, *, waited: bool) -> str:
        """Send a checkpoint (named ``name``, or callflow's next ``cf<n>``); its name.

        ``waited``: whether the caller will :meth:`_wait_mark` for it (or :meth:`_forget_mark`
        it). Only then is its result kept until asked for: a mark nobody waits for holds
        nothing once Plivo acks or a clear drops it, so a long call's bookkeeping does not
        grow with every checkpoint sent.
        """
        if name is None:
            self._auto_marks += 1
            name = f"cf{self._auto_marks}"
            while self._chosen_marks is not None and name in self._chosen_marks:
                self._auto_marks += 1
                name = f"cf{self._auto_marks}"
        else:
            if self._chosen_marks is None:
                self._chosen_marks = set()
            self._chosen_marks.add(name)
        if waited:
            self._mark_waiters[name] = Signal()
        self._ledger.mark(name)
        now = self._mark_sent_at[name] = trio.current_time()
        self._ack_mark_sent(now)
        await self._write(encode(Checkpoint(stream_id=self.info.stream_id, name=name)))
        return name

    async def _wait_mark(self, name: str) -> bool:
        """Wait for mark ``name`` (sent with ``waited=True``): True when played, False when
        cleared. Its bookkeeping goes with the wait, however it ends (a barge-in cancels it).

        Raises:
            CallEnded: the call ended before Plivo acked or cleared it.
        """
        event = self._mark_waiters.get(name)
        try:
            while event is not None and not event.is_set():
                self._raise_if_ended()
                await self._wait_or_give_up(event)
        finally:
            played = self._mark_results.get(name)
            self._forget_mark(name)
        if played is None:  # woken by the end of the call, not by Plivo
            self._raise_if_ended()
        return bool(played)

    def _forget_mark(self, name: str) -> None:
        """Nobody will wait for mark ``name`` (sent with ``waited=True``) after all."""
        self._mark_waiters.pop(name, None)
        self._mark_results.pop(name, None)

    async def _wait_or_give_up(self, event: Signal) -> None:
        """``event.wait()``; if the next checkpoint ack is overdue first, the queue is
        cleared, so every wait for it ends (a ``say`` reports ``interrupted_by="no_ack"``)."""
        if await self._wait_for_ack(event):
            await self._wait_cleared(await self._send_clear("no_ack"))

    def _on_played(self, name: str) -> None:
        marks = self._ledger.played(name, trio.current_time())
        if marks is None:
            log.debug(
                "call=%s playedStream for unknown or cleared checkpoint %r", self.call_id, name
            )
            return
        self._resolve(marks, played=True)

    def _resolve(self, marks: Sequence[Mark], *, played: bool) -> None:
        now = trio.current_time()
        for mark in marks:
            sent_at = self._mark_sent_at.pop(mark.name, None)
            if played and sent_at is not None:
                self._metrics.checkpoint_round_trip.observe(now - sent_at)
            event = self._mark_waiters.get(mark.name)
            if event is not None:
                self._mark_results[mark.name] = played
                event.set()
        self._ack_progress(now)
        self._progress.set()
        self._progress = Signal()

    def _on_end(self) -> None:
        for mark in self._ledger.drop_all():  # woken without a result: they raise CallEnded
            event = self._mark_waiters.get(mark.name)
            if event is not None:
                event.set()
        self._progress.set()
        super()._on_end()
