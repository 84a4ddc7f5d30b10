"""Bookkeeping of the audio queued at Plivo, from checkpoint acks (pure; no trio, no IO).

Positions are seconds on the stream's *sent timeline*: the sum of the durations of every
``playAudio`` sent so far. A *mark* is a checkpoint sent at a position; Plivo acks it with
``playedStream`` once everything before it has played (PROTOCOL.md §3), and never acks a
checkpoint whose audio a ``clearAudio`` dropped (PROTOCOL.md §2). From the acks alone the
ledger knows, to within one mark, how much has been heard and how much is still queued.

It also keeps the payloads sent and not yet known played (at most ``max_lead_s`` of audio),
so that when the socket drops and Plivo reconnects, the unheard rest can be sent again
(:meth:`Ledger.pause`, :meth:`Ledger.resume_plan`, :meth:`Ledger.resumed`).
"""

from __future__ import annotations

import attrs


@attrs.define
class Mark:
    """A checkpoint in flight: ``name`` was sent when ``position_s`` seconds had been sent."""

    name: str
    position_s: float


@attrs.frozen
class Sent:
    """A ``playAudio`` payload that may still be unheard: it covers ``start_s`` to ``end_s``
    on the sent timeline."""

    start_s: float
    end_s: float
    payload: str


@attrs.define
class Ledger:
    """What has been sent, confirmed played, and cleared, on one stream.

    Attributes:
        sent_s: seconds of audio sent (``playAudio``) since the stream started.
        played_s: the position of the latest acknowledged checkpoint: heard for sure.
        floor_s: everything before this position was dropped by a completed ``clearAudio``,
            or was heard before the socket dropped (:meth:`Ledger.resumed`).
    """

    sent_s: float = 0.0
    played_s: float = 0.0
    floor_s: float = 0.0
    # lists, not deques: a deque allocates a 64-slot block even when empty (~760 bytes a
    # call each), and these hold a few entries at most
    _marks: list[Mark] = attrs.field(factory=list)
    _clears: list[float] = attrs.field(factory=list)
    _anchor_time: float = 0.0
    _anchor_position: float = 0.0
    _unheard: list[Sent] = attrs.field(factory=list)
    _paused: bool = False

    def heard_position(self, now: float) -> float:
        """Where playback is at time ``now`` (seconds on the sent timeline), estimated.

        Plivo plays queued audio at real-time rate, so from the last known point (the last ack,
        or the moment audio was sent to an idle queue) playback advances one second per second.
        The estimate never goes below the last acked checkpoint nor past the next pending one,
        so it is right to within one chunk even if Plivo's clock or the network drifts.
        """
        low = max(self.played_s, self.floor_s)
        if self._paused:
            return max(low, self._anchor_position)
        if self.queued_s <= 0:
            return min(low, self.sent_s)
        high = self._marks[0].position_s if self._marks else self.sent_s
        estimate = self._anchor_position + max(0.0, now - self._anchor_time)
        return min(max(estimate, low), high)

    @property
    def queued_s(self) -> float:
        """Upper bound of the seconds of audio still queued at Plivo."""
        return max(0.0, self.sent_s - max(self.played_s, self.floor_s))

    @property
    def unmarked_s(self) -> float:
        """Seconds sent since the last mark (or since the queue was last known empty)."""
        last = self._marks[-1].position_s if self._marks else max(self.played_s, self.floor_s)
        return max(0.0, self.sent_s - last)

    @property
    def marks_pending(self) -> int:
        """How many checkpoints await an ack."""
        return len(self._marks)

    @property
    def clears_pending(self) -> int:
        """How many ``clearAudio`` await ``clearedAudio``."""
        return len(self._clears)

    def audio_sent(self, seconds: float, now: float = 0.0, payload: str = "") -> None:
        """Record a ``playAudio`` of ``seconds`` of audio sent at time ``now``; ``payload``
        is kept until it is known played, for :meth:`resume_plan`."""
        if self.queued_s <= 0 and not self._paused:  # the queue was idle: playback starts now
            self._anchor_time, self._anchor_position = now, self.sent_s
        if payload:
            self._unheard.append(Sent(self.sent_s, self.sent_s + seconds, payload))
        self.sent_s += seconds

    def mark(self, name: str) -> float:
        """Record a checkpoint ``name`` sent now; return its position (seconds)."""
        self._marks.append(Mark(name, self.sent_s))
        return self.sent_s

    def played(self, name: str, now: float = 0.0) -> list[Mark] | None:
        """Record Plivo's ``playedStream`` for ``name``, received at time ``now``.

        Acks arrive in queue order, so every mark before ``name`` has played too. Returns the
        marks now resolved as played (oldest first), or ``None`` if ``name`` is not pending
        (a late ack after a clear, or a name we never sent).
        """
        if not any(m.name == name for m in self._marks):
            return None
        done: list[Mark] = []
        while self._marks:
            mark = self._marks.pop(0)
            done.append(mark)
            if mark.name == name:
                break
        self.played_s = max(self.played_s, done[-1].position_s)
        self._anchor_time, self._anchor_position = now, self.played_s
        self._forget_heard()
        return done

    def clear_sent(self) -> None:
        """Record a ``clearAudio`` sent now: it drops all audio sent before it."""
        self._clears.append(self.sent_s)

    def cleared(self) -> list[Mark]:
        """Record Plivo's ``clearedAudio`` for the oldest ``clearAudio`` in flight.

        Returns the marks that will never be acked (their audio was dropped), oldest first.
        An unexpected ``clearedAudio`` (none in flight) clears everything sent so far.
        """
        position = self._clears.pop(0) if self._clears else self.sent_s
        self.floor_s = max(self.floor_s, position)
        dropped: list[Mark] = []
        while self._marks and self._marks[0].position_s <= position:
            dropped.append(self._marks.pop(0))
        self._forget_heard()
        return dropped

    def _forget_heard(self) -> None:
        low = max(self.played_s, self.floor_s)
        unheard = self._unheard
        while unheard and unheard[0].end_s <= low:
            unheard.pop(0)

    def pause(self, now: float) -> float:
        """The socket dropped at ``now``. What Plivo played after the last acknowledged
        checkpoint is unknown, so playback is taken to stand at that checkpoint (or where a
        completed clear left it) until :meth:`resumed`: to within one mark of what the caller
        heard, and never past it. Returns that position (seconds on the sent timeline)."""
        if not self._paused:
            self._anchor_position = max(self.played_s, self.floor_s)
            self._anchor_time = now
            self._paused = True
        return self._anchor_position

    def resume_plan(self) -> tuple[list[Mark], list[tuple[Sent, float]]]:
        """What to send again on a new socket, after :meth:`pause`: every pending mark, and
        each payload not heard, as ``(sent, from_s)`` where ``from_s`` is where in it
        playback stopped (its ``start_s`` for all but the first). Both oldest first; a mark
        goes after the audio before its position."""
        heard = self.heard_position(self._anchor_time)
        audio = [(item, max(item.start_s, heard)) for item in self._unheard if item.end_s > heard]
        return list(self._marks), audio

    def resumed(self, now: float) -> None:
        """The unheard rest was sent again on a new socket at ``now``: everything before the
        paused position is done with, and playback goes on from there."""
        position = self.heard_position(self._anchor_time)
        self.floor_s = max(self.floor_s, position)
        self._paused = False
        self._anchor_time, self._anchor_position = now, position
        self._forget_heard()

    def drop_all(self) -> list[Mark]:
        """The stream has ended: every pending mark is resolved as not played."""
        dropped = list(self._marks)
        self._marks.clear()
        self._clears.clear()
        self._unheard.clear()
        return dropped
