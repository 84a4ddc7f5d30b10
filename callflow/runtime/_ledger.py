"""Bookkeeping of the audio queued at Plivo, from checkpoint acks (pure; no trio, no IO).

Positions are seconds on the stream's *sent timeline*: the sum of the durations of every
``playAudio`` sent so far. A *mark* is a checkpoint sent at a position; Plivo acks it with
``playedStream`` once everything before it has played (PROTOCOL.md §3), and never acks a
checkpoint whose audio a ``clearAudio`` dropped (PROTOCOL.md §2). From the acks alone the
ledger knows, to within one mark, how much has been heard and how much is still queued.
"""

from __future__ import annotations

from collections import deque

import attrs


@attrs.define
class Mark:
    """A checkpoint in flight: ``name`` was sent when ``position_s`` seconds had been sent."""

    name: str
    position_s: float


@attrs.define
class Ledger:
    """What has been sent, confirmed played, and cleared, on one stream.

    Attributes:
        sent_s: seconds of audio sent (``playAudio``) since the stream started.
        played_s: the position of the latest acknowledged checkpoint: heard for sure.
        floor_s: everything before this position was dropped by a completed ``clearAudio``.
    """

    sent_s: float = 0.0
    played_s: float = 0.0
    floor_s: float = 0.0
    _marks: deque[Mark] = attrs.field(factory=deque)
    _clears: deque[float] = attrs.field(factory=deque)
    _anchor_time: float = 0.0
    _anchor_position: float = 0.0

    def heard_position(self, now: float) -> float:
        """Where playback is at time ``now`` (seconds on the sent timeline), estimated.

        Plivo plays queued audio at real-time rate, so from the last known point (the last ack,
        or the moment audio was sent to an idle queue) playback advances one second per second.
        The estimate never goes below the last acked checkpoint nor past the next pending one,
        so it is right to within one chunk even if Plivo's clock or the network drifts.
        """
        low = max(self.played_s, self.floor_s)
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

    def audio_sent(self, seconds: float, now: float = 0.0) -> None:
        """Record a ``playAudio`` of ``seconds`` of audio sent at time ``now``."""
        if self.queued_s <= 0:  # the queue was idle: playback starts now
            self._anchor_time, self._anchor_position = now, self.sent_s
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
            mark = self._marks.popleft()
            done.append(mark)
            if mark.name == name:
                break
        self.played_s = max(self.played_s, done[-1].position_s)
        self._anchor_time, self._anchor_position = now, self.played_s
        return done

    def clear_sent(self) -> None:
        """Record a ``clearAudio`` sent now: it drops all audio sent before it."""
        self._clears.append(self.sent_s)

    def cleared(self) -> list[Mark]:
        """Record Plivo's ``clearedAudio`` for the oldest ``clearAudio`` in flight.

        Returns the marks that will never be acked (their audio was dropped), oldest first.
        An unexpected ``clearedAudio`` (none in flight) clears everything sent so far.
        """
        position = self._clears.popleft() if self._clears else self.sent_s
        self.floor_s = max(self.floor_s, position)
        dropped: list[Mark] = []
        while self._marks and self._marks[0].position_s <= position:
            dropped.append(self._marks.popleft())
        return dropped

    def drop_all(self) -> list[Mark]:
        """The stream has ended: every pending mark is resolved as not played."""
        dropped = list(self._marks)
        self._marks.clear()
        self._clears.clear()
        return dropped
