"""``AckBound``: how long a playback waits for Plivo's checkpoint acks before giving up.

Plivo plays queued audio in real time and acks a checkpoint (``playedStream``) once the audio
before it has played (PROTOCOL.md §2, §3). With ``q`` seconds of audio queued ahead of the
oldest checkpoint not yet acked, its ack is due after ``q`` seconds and a round trip; if none
comes within ``q + max(RuntimeConfig.ack_grace_s, q)`` (twice the audio, and 5 s more by
default), Plivo is not playing our audio, or not saying so, and waiting on would hold the
call for ever. The stall is logged once per call (with the call id); the playback engine
(:class:`~callflow.runtime._playback.Player`) then clears the queue, so every wait for it
ends: a ``say`` returns ``completed=False, interrupted_by="no_ack"``, a ``checkpoint``
returns False, a ``play`` goes on. A dead socket is the keepalive's business (the server's
pings); this bound covers a link that is alive while Plivo stays silent about playback.

The bound restarts from each ack (or clear), so a long prompt that Plivo plays never reaches
it. It costs nothing per message: a deadline is computed per checkpoint sent and acked. On the
server the waits are bounded by its sweeper (``PhaseTimeouts.wait_until``: an alarm per wait,
nothing left in trio's deadline heap once the wait is over; docs/performance.md, step 10);
in a call run on its own, by ``trio.move_on_at``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from callflow.runtime._config import CallInfo, RuntimeConfig
from callflow.runtime._ledger import Ledger
from callflow.runtime._state import CallState
from callflow.runtime._sync import Signal

__all__ = ["AckBound"]

log = logging.getLogger("callflow.call")


class AckBound(CallState):
    """The ack bound's state and waits (module doc); base of the playback engine, which owns
    ``_ledger`` and ``_mark_sent_at`` (checkpoint name -> time sent)."""

    if not TYPE_CHECKING:  # (mypy would take () as this class's only attributes)
        __slots__ = ()
    _SLOTS: tuple[str, ...] = ("_ack_due", "_ack_stall_logged")

    _ledger: Ledger
    _mark_sent_at: dict[str, float]

    def __init__(self, info: CallInfo, config: RuntimeConfig | None) -> None:
        super().__init__(info, config)
        self._ack_due: float | None = None  # when the next ack is due at the latest
        self._ack_stall_logged = False

    def _ack_mark_sent(self, now: float) -> None:
        """A checkpoint was just sent (and marked in the ledger)."""
        if self._ack_due is None:
            self._ack_due = self._ack_deadline(now)

    def _ack_progress(self, now: float) -> None:
        """Checkpoints were acked or cleared: the bound starts over from the oldest left."""
        self._ack_due = self._ack_deadline(now) if self._ledger.marks_pending else None

    def _ack_deadline(self, now: float) -> float:
        queued = self._ledger.queued_s
        return now + queued + max(self._config.ack_grace_s, queued)

    async def _wait_for_ack(self, event: Signal) -> bool:
        """``event.wait()``, or until the next checkpoint ack is overdue: True then (logged
        once per call), and the caller gives the playback up. False when ``event`` was set
        or an ack came meanwhile (the caller, still waiting, calls again)."""
        due = self._ack_due
        if due is None:
            await event.wait()
            return False
        timeouts = self._timeouts
        if timeouts is not None:  # (the server's: no entry in trio's deadline heap per wait)
            if await timeouts.wait_until(event, due):
                return False
        else:
            with trio.move_on_at(due):
                await event.wait()
                return False
        if self._ack_due != due or not self._ledger.marks_pending:
            return False
        self._ack_due = None
        if not self._acks_expected():
            self._ack_due = self._ack_deadline(trio.current_time())  # the bound starts over
            return False
        self._metrics.ack_timeouts.inc()
        if not self._ack_stall_logged:
            self._ack_stall_logged = True
            log.warning(
                "call=%s no checkpoint ack (playedStream) within %.1f s; %d pending, %.1f s "
                "of audio sent and unconfirmed: playback given up (clearAudio sent; further "
                "stalls on this call are not logged)",
                self.call_id,
                trio.current_time() - min(self._mark_sent_at.values(), default=due),
                self._ledger.marks_pending,
                self._ledger.queued_s,
            )
        return True

    def _acks_expected(self) -> bool:
        """Whether Plivo can be acking now. Not while the call has no link to it (a call
        detached, waiting for a reconnect, overrides this): the bound then starts over."""
        return True
