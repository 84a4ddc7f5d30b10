"""The playback engine of a call: ``play``, ``say`` (with barge-in) and ``clear``.

Audio goes out as cached base64 ``playAudio`` payloads, never more than
``RuntimeConfig.max_lead_s`` ahead of what Plivo's checkpoint acks confirm played (the
checkpoints and their ledger are the base class's, :mod:`callflow.runtime._checkpoints`);
``playedStream`` and ``clearedAudio`` from the reader resolve the waiters (PROTOCOL.md §2,
§3).
"""

from __future__ import annotations

import contextlib
import logging
from contextlib import aclosing
from typing import TYPE_CHECKING

import trio

from callflow.audio import Audio
from callflow.protocol import ClearAudio, encode, play_audio_message, play_audio_prefix
from callflow.runtime._checkpoints import Checkpoints
from callflow.runtime._config import CallInfo, Playback, RuntimeConfig
from callflow.runtime._errors import CallEnded
from callflow.runtime._results import BargeIn
from callflow.runtime._sources import AudioSource, b64_len, ready_payloads
from callflow.runtime._sources import payloads as source_payloads
from callflow.runtime._sync import Signal
from callflow.runtime._watch import TriggerWatch

log = logging.getLogger("callflow.call")


class Player(Checkpoints):
    """The playback part of a :class:`~callflow.runtime.Call` (module docstring)."""

    if not TYPE_CHECKING:  # (mypy would take () as this class's only attributes)
        __slots__ = ()
    _SLOTS: tuple[str, ...] = (
        "_barge_in_at",
        "_barge_in_by_speech",
        "_barge_in_pending",
        "_flush_due",
        "_clear_cause",
        "_clear_done",
        "_clear_epoch",
        "_first_audio_sent",
        "_heard_at_clear",
        "_latest_clear",
        "_prefix",
        "_started_at",
    )

    def __init__(self, info: CallInfo, config: RuntimeConfig | None) -> None:
        super().__init__(info, config)
        self._prefix = play_audio_prefix(info.stream_id, info.format)
        self._clear_done = Signal()
        self._clear_epoch = 0
        self._latest_clear = self._clear_done
        self._barge_in_pending = False
        self._flush_due = False  # a clearAudio written in part from the dispatch
        self._heard_at_clear = 0.0
        # for the metrics: time to first audio, barge-in latency, checkpoint round trips
        self._started_at = trio.current_time()
        self._first_audio_sent = False
        self._barge_in_at: float | None = None
        self._barge_in_by_speech = False
        self._clear_cause = "cleared"  # what a say that a clear ended reports

    async def play(self, source: AudioSource) -> float:
        """Queue ``source`` for playback and return once it is sent, not heard.

        Never queues more than ``RuntimeConfig.max_lead_s`` seconds beyond what Plivo has
        confirmed played: a long source is sent as playback progresses. A ``play`` cancelled
        before it has sent everything clears the queue (``clearAudio``, shielded and bounded,
        as a cancelled ``say`` does), so audio a cancelled task left behind never plays on
        unseen; audio of a ``play`` that returned belongs to the call and plays out.

        Returns:
            The seconds of audio queued.

        Raises:
            CallEnded: the call is over.
            ValueError: raw bytes that are not whole samples of the stream's format.
            callflow.audio.AudioError: a WAV file that cannot be read.
        """
        start = self._ledger.sent_s
        epoch = self._clear_epoch
        try:
            async with aclosing(source_payloads(source, self._format, self._renderer)) as payloads:
                async for payload in payloads:
                    await self._send_audio(payload)
        except trio.Cancelled:
            await self._clear_on_cancel(epoch)  # nothing a cancelled task queued plays on
            raise
        return self._ledger.sent_s - start

    async def say(self, source: AudioSource, *, barge_in: bool | str | BargeIn = False) -> Playback:
        """Play ``source`` and return once the caller has heard all of it, or it was stopped.

        Sends the audio as ``playAudio`` messages with a checkpoint after each chunk and
        returns when Plivo acks the last one (``playedStream``, PROTOCOL.md §3).

        Barge-in: with ``barge_in`` (``True`` = any key, ``"12#"`` = those keys,
        ``"speech"``, or a :class:`BargeIn`), a trigger that arrives while the prompt plays
        stops it at once: callflow sends ``clearAudio``, waits (bounded) for
        ``clearedAudio``, and returns ``completed=False`` with ``interrupted_by`` set to the
        key or ``"speech"``. The key is not consumed: the next ``gather``/``wait_dtmf`` sees it.

        Type-ahead: a pending key (pressed before this ``say`` began and not yet taken) that
        is a barge-in key interrupts it at once, so nothing is sent: ``completed=False``,
        ``heard_s=0``, ``interrupted_by`` that key. One rule for every prompt, ``gather``'s
        and ``menu``'s too: a key that lands between two prompts answers the next at once.

        Keys pressed while a ``say`` that no key can stop plays (``barge_in=False`` or speech
        only) are kept as type-ahead or dropped, as ``call.uninterruptible_keys`` says
        (``"keep"`` by default).

        If the flow's own cancel scope ends the ``say`` (``trio.move_on_after`` around it), the
        queued audio is cleared the same way before the cancellation goes on; if another task
        calls ``clear()``, this returns ``completed=False, interrupted_by="cleared"``; if Plivo
        acks none of its checkpoints in time (``RuntimeConfig.ack_grace_s``), callflow clears
        it and it returns ``interrupted_by="no_ack"``.

        Returns:
            A :class:`Playback`: ``completed``, ``duration_s``, ``heard_s`` (to within one
            chunk, from checkpoint acks and the real-time playback rate), ``interrupted_by``.

        Raises:
            CallEnded: the call is over.
        """
        trigger = BargeIn.of(barge_in)
        self._raise_if_ended()
        typed = self._pending_barge_in(trigger)
        if typed is not None:
            duration = source.duration_s if isinstance(source, Audio) else 0.0
            return Playback(False, duration, 0.0, typed)
        epoch = self._clear_epoch
        start = self._ledger.sent_s
        completed = False
        watch: TriggerWatch | None = None
        stop: _Interruption | None = None
        last: str | None = None  # the newest mark sent, the one the say waits for
        deaf = trigger is None or not trigger.keys  # no key can stop it
        self._uninterruptible_says += deaf
        try:
            with trio.CancelScope() as scope:
                stop = _Interruption(self, scope, epoch)
                if trigger is not None:
                    watch = TriggerWatch(self, trigger, stop)
                ready = ready_payloads(source, self._format)
                if ready is not None:  # an Audio or raw bytes: encoded already, no generator
                    for payload in ready:
                        if not await self._send_audio(payload, mark=False, epoch=epoch):
                            break
                        last = await self._next_mark(last)
                else:
                    async with aclosing(
                        source_payloads(source, self._format, self._renderer)
                    ) as payloads:
                        async for payload in payloads:
                            if not await self._send_audio(payload, mark=False, epoch=epoch):
                                break
                            last = await self._next_mark(last)
                completed = (last is None or await self._wait_mark(last)) and (
                    self._clear_epoch == epoch
                )
        except trio.Cancelled:
            await self._clear_on_cancel(epoch)
            raise
        finally:
            self._uninterruptible_says -= deaf
            if watch is not None:
                watch.stop()
            if last is not None:  # interrupted before or while waiting for it
                self._forget_mark(last)
        end = self._ledger.sent_s
        duration = source.duration_s if isinstance(source, Audio) else end - start
        if completed:
            return Playback(True, duration, end - start)
        if stop is not None and stop.cause is not None:
            interrupted_by, heard_at = stop.cause, stop.heard_at
            if self._clear_epoch != epoch:  # the reader already sent clearAudio
                await self._wait_cleared(self._latest_clear)
            elif self._ledger.queued_s > 0:
                await self.clear()
        else:  # "cleared", or "no_ack" (_ack_stalled)
            interrupted_by, heard_at = self._clear_cause, self._heard_at_clear
        return Playback(False, duration, max(0.0, min(end, heard_at) - start), interrupted_by)

    async def _clear_on_cancel(self, epoch: int) -> None:
        """The flow cancelled a ``say``: leave nothing of it playing (shielded, bounded)."""
        if self.ended or self._clear_epoch != epoch or self._ledger.queued_s <= 0:
            return
        with (
            trio.CancelScope(shield=True),
            trio.move_on_after(self._config.clear_timeout_s),
            contextlib.suppress(CallEnded),
        ):
            await self.clear()

    def _pending_barge_in(self, trigger: BargeIn | None) -> str | None:
        """The oldest pending key that ``trigger`` lets barge in, else None."""
        if trigger is None or not trigger.keys:
            return None
        return next((key for key in self._dtmf if trigger.matches_key(key)), None)

    async def _next_mark(self, last: str | None) -> str:
        """A checkpoint after the payload just sent; the one before it (``last``) will not
        be waited for any more."""
        if last is not None:
            self._forget_mark(last)
        return await self._send_mark(waited=True)

    async def clear(self) -> None:
        """Stop playback now: Plivo drops every queued chunk (barge-in).

        Sends ``clearAudio`` and waits for ``clearedAudio`` (PROTOCOL.md §3), at most
        ``RuntimeConfig.clear_timeout_s`` seconds (then logs and goes on). Pending
        ``say``/``checkpoint`` calls return as not played.

        Raises:
            CallEnded: the call is over.
        """
        await self._wait_cleared(await self._send_clear())

    async def _send_clear(self, cause: str = "cleared") -> Signal:
        """Send ``clearAudio``; return the event ``clearedAudio`` will set. Everything before
        the first ``await`` happens at once, so a ``say`` resuming later already sees it."""
        done = self._clear_started(cause)
        await self._write(encode(ClearAudio(stream_id=self.info.stream_id)))
        self._clear_written()
        return done

    def _clear_started(self, cause: str) -> Signal:
        """The bookkeeping of a ``clearAudio`` going out now; the event ``clearedAudio`` will
        set."""
        self._clear_epoch += 1
        self._clear_cause = cause
        self._barge_in_pending = False  # any clearAudio answers a barge-in waiting for one
        self._heard_at_clear = self._ledger.heard_position(trio.current_time())
        done = self._latest_clear = self._clear_done
        self._ledger.clear_sent()
        return done

    def _clear_written(self) -> None:
        if self._barge_in_at is not None:  # this clearAudio answers a barge-in
            m = self._metrics
            latency = m.barge_in_speech if self._barge_in_by_speech else m.barge_in_dtmf
            latency.observe(trio.current_time() - self._barge_in_at)
            self._barge_in_at = None

    def _barge_in_clear_now(self) -> bool:
        """Called by the dispatch right after the event that triggered a barge-in: write
        ``clearAudio`` there and then, when the socket takes it at once (no task switch, so
        barge-in costs no scheduler pass at any load). True when that is done (or nothing was
        pending); False when the reader task must finish it (:meth:`_barge_in_clear`): a
        write under way, a detached call, or a socket that took only part of it."""
        if not self._barge_in_pending:
            return True
        if self._ended is not None:
            self._barge_in_pending = False
            return True
        written = self._write_now(encode(ClearAudio(stream_id=self.info.stream_id)))
        if written is None:
            return False  # not written: the reader sends it (_barge_in_clear)
        self._clear_started("cleared")
        self._clear_written()
        if written:
            return True
        self._flush_due = True  # the socket took part of it: the reader flushes the rest
        return False

    async def _barge_in_clear(self) -> None:
        """Called by the reader right after the event that triggered a barge-in, when the
        dispatch could not finish it (:meth:`_barge_in_clear_now`): send ``clearAudio`` (or
        the rest of it) from the reader itself, as soon as it runs, not when the interrupted
        ``say`` next runs (whichever of the two runs first sends it; the other sees it sent)."""
        if self._flush_due:
            self._flush_due = False
            with contextlib.suppress(CallEnded):
                await self._flush_writes()
        if not self._barge_in_pending:
            return
        self._barge_in_pending = False
        if self._ended is None:
            with contextlib.suppress(CallEnded):
                await self._send_clear()

    async def _wait_cleared(self, done: Signal) -> None:
        with trio.move_on_after(self._config.clear_timeout_s) as scope:
            while not done.is_set():
                self._raise_if_ended()
                await done.wait()
        if scope.cancelled_caught:
            log.warning(
                "call=%s no clearedAudio within %.1f s; treating the queue as cleared",
                self.call_id,
                self._config.clear_timeout_s,
            )
            self._on_cleared()

    async def _send_audio(
        self, payload: str, *, mark: bool = True, epoch: int | None = None
    ) -> bool:
        """Send one payload once the lead allows; False (nothing sent) if a clear happened
        since ``epoch``."""
        seconds = b64_len(payload) / self._format.bytes_per_second
        await self._wait_for_room(seconds)
        if epoch is not None and epoch != self._clear_epoch:
            return False
        await self._write(play_audio_message(self._prefix, payload))
        now = trio.current_time()
        self._ledger.audio_sent(seconds, now, payload)
        if not self._first_audio_sent:
            self._first_audio_sent = True
            self._metrics.time_to_first_audio.observe(now - self._started_at)
        if mark and self._ledger.unmarked_s >= self._config.mark_interval_s:
            await self._send_mark(waited=False)
        return True

    def _on_cleared(self) -> None:
        self._resolve(self._ledger.cleared(), played=False)
        self._clear_done.set()
        self._clear_done = Signal()

    def _on_end(self) -> None:
        self._clear_done.set()
        super()._on_end()


class _Interruption:
    """What stopped one ``say`` (the first trigger's ``cause``, and ``heard_at``: the audio
    position, in seconds of the call's stream, the caller had heard then), and the stopping
    itself: the say's scope is cancelled and, when its audio is still queued at Plivo, the
    reader is told to send ``clearAudio`` next. Called by a :class:`TriggerWatch`."""

    __slots__ = ("_epoch", "_player", "_scope", "cause", "heard_at")

    def __init__(self, player: Player, scope: trio.CancelScope, epoch: int) -> None:
        self._player = player
        self._scope = scope
        self._epoch = epoch
        self.cause: str | None = None
        self.heard_at = 0.0

    def __call__(self, cause: str) -> None:
        if self.cause is not None:
            return
        player = self._player
        now = trio.current_time()
        self.cause = cause
        self.heard_at = player._ledger.heard_position(now)
        self._scope.cancel()
        if player._clear_epoch == self._epoch and player._ledger.queued_s > 0:
            player._barge_in_pending = True  # the reader sends clearAudio next
            player._barge_in_at = now
            player._barge_in_by_speech = cause == "speech"
