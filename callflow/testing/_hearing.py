"""What the fake caller hears: Plivo's playback queue played in real time, checkpoints acked
as they are reached, ``clearAudio`` obeyed, and the checks a test makes on it (``hears``,
prompt starts)."""

from __future__ import annotations

import base64
import collections
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping

import attrs
import numpy as np
import trio

from callflow.audio import Audio, decode
from callflow.protocol import ClearedAudio, Format, PlayAudio, PlayedStream, encode_event

log = logging.getLogger("callflow.testing")


@attrs.frozen
class Cleared:
    """A ``clearAudio`` the fake obeyed: at ``time`` it dropped ``dropped_s`` seconds of queued
    audio (including the unplayed rest of the chunk that was playing)."""

    time: float
    dropped_s: float


@attrs.frozen
class _Start:
    time: float
    offset: int  # bytes heard before it


class Hearing:
    """The playback half of :class:`~callflow.testing.FakePlivo`: Plivo's queue of audio and
    checkpoints, played at real-time rate, and what the caller heard of it."""

    stream_id: str
    """The stream's id (``FakePlivo``'s), named in the events this half sends."""
    _seq: Iterator[int]
    """The events' ``sequenceNumber`` counter (``FakePlivo``'s)."""
    _send: Callable[[str], Awaitable[bool]]
    """Send one event to callflow; whether it went out (``FakePlivo._send``)."""

    def __init__(self, fmt: Format, prompts: Mapping[str, Audio] | None) -> None:
        self.format = fmt
        self._prompts = dict(prompts or {})
        self._queue: collections.deque[bytes | str] = collections.deque()
        self._queue_changed = trio.Event()
        self._heard = bytearray()
        self._heard_changed = trio.Event()
        self._cursor = 0
        self._cuts: list[int] = []  # offsets in _heard where a clearAudio cut the playback
        self._starts: list[_Start] = []
        self._starts_taken = 0
        self._playing_scope: trio.CancelScope | None = None
        self._playing_item = b""
        self._playing_began = 0.0
        self._idle = True
        self._closed = trio.Event()
        self.cleared: list[Cleared] = []
        """Every ``clearAudio`` obeyed, in order."""
        self.max_queued_s = 0.0
        """The most audio, in seconds, ever held unplayed at once (the queue plus the rest of
        the chunk playing), as :attr:`queued_s` measures it."""

    # -- what the caller heard -------------------------------------------------------------

    @property
    def heard(self) -> Audio:
        """Everything the caller has heard so far, as :class:`Audio` at the stream's rate."""
        return self._audio(bytes(self._heard))

    @property
    def heard_s(self) -> float:
        """Seconds of audio played to the caller so far."""
        return self.format.duration_s(len(self._heard))

    @property
    def queued_s(self) -> float:
        """Seconds of audio held and not yet played: the queue, plus what is left of the chunk
        playing now (what a ``clearAudio`` would drop)."""
        waiting = sum(len(i) for i in self._queue if isinstance(i, bytes))
        return self.format.duration_s(waiting) + self._playing_left_s()

    @property
    def prompt_starts(self) -> list[float]:
        """When each prompt began to play (``trio.current_time()``, virtual seconds under a
        MockClock): playback starting from idle, so the first chunk after silence or after a
        ``clearAudio``."""
        return [start.time for start in self._starts]

    async def prompt_started(self) -> float:
        """Wait for the next prompt start this test has not seen and return its time.

        "Next" is the first start after the one an earlier ``prompt_started`` returned, and
        not before where :meth:`hears` has got to, so after ``await caller.hears(WELCOME)``
        it is the start of what plays after ``WELCOME``. Wrap it in ``trio.fail_after`` to
        bound the wait.

        Raises:
            AssertionError: the call ended first.
        """
        while True:
            for index in range(self._starts_taken, len(self._starts)):
                if self._starts[index].offset >= self._cursor:
                    self._starts_taken = index + 1
                    return self._starts[index].time
            if self._closed.is_set():
                raise AssertionError("call ended before another prompt started")
            await self._wait_heard_change()

    async def hears(self, expected: Audio | None = None) -> Audio:
        """Wait until the caller has heard ``expected`` next, and check it.

        Compares in the stream's wire encoding (what callflow sends is what Plivo plays), from
        where the last ``hears`` stopped; when that is inside a playback a ``clearAudio`` cut
        short (a prompt stopped by barge-in), from the cut, since the caller never heard the
        rest of it (unless ``expected`` is what they heard of it). A difference is reported
        once the playback that differs has ended. With ``expected=None``,
        waits until playback goes idle (nothing queued) and returns what was heard since the
        last ``hears``. Wrap it in ``trio.fail_after`` to bound the wait.

        Raises:
            AssertionError: the caller heard something else (the message says what: a
                prompt given to ``FakePlivo(prompts=...)``, silence, or the level and pitch
                of other audio), or the call ended first.
        """
        if expected is None:
            while (
                self._queue or self._playing_scope is not None or len(self._heard) == self._cursor
            ):
                if self._closed.is_set():
                    break
                await self._wait_heard_change()
            got = bytes(self._heard[self._cursor :])
            self._cursor = len(self._heard)
            return self._audio(got)
        want = expected.encoded(self.format)
        while True:
            start = self._start_for(want)
            got = bytes(self._heard[start : start + len(want)])
            same = got == want[: len(got)]
            if same and len(got) == len(want):
                self._cursor = start + len(want)
                return expected
            idle = not self._queue and self._playing_scope is None
            # A difference is final once that playback has ended (a clearAudio could still
            # cut it, and the caller would then be at the cut).
            if not same and (idle or self._closed.is_set()):
                first = next(i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b)
                raise AssertionError(
                    f"the caller heard different audio: first difference at "
                    f"{self.format.duration_s(first):.3f} s into the expected "
                    f"{expected.duration_s:.2f} s" + self._instead(start, len(want))
                )
            if self._closed.is_set() and idle:
                raise AssertionError(
                    f"call ended after the caller heard {self.format.duration_s(len(got)):.2f} s "
                    f"of the expected {expected.duration_s:.2f} s" + self._instead(start, len(got))
                )
            await self._wait_heard_change()

    def skip_heard(self) -> float:
        """Move the ``hears`` cursor to now; return the seconds skipped."""
        skipped = len(self._heard) - self._cursor
        self._cursor = len(self._heard)
        return self.format.duration_s(skipped)

    def _start_for(self, want: bytes) -> int:
        """Where ``hears`` compares ``want`` from: the cursor, or, when the cursor is inside a
        playback a clearAudio cut short, the cut (the caller never heard the rest of it),
        unless ``want`` was heard whole at the cursor before the cut."""
        start = self._cursor
        for cut in self._cuts:
            if cut <= start:
                continue
            began = max((s.offset for s in self._starts if s.offset < cut), default=0)
            if began > start:
                break  # audio the caller heard whole lies between: compare it
            if start + len(want) <= cut and self._heard[start : start + len(want)] == want:
                break
            start = cut
        return start

    def _instead(self, start: int, length: int) -> str:
        """'; heard instead: …' describing ``length`` bytes heard from ``start``."""
        got = bytes(self._heard[start : start + length])
        when = self.format.duration_s(start)
        if not got:
            return f"; heard nothing from {when:.2f} s into the call"
        what = self._name(got)
        cut = next((c for c in self._cuts if start < c <= start + length), None)
        if cut is not None:
            what += f", cut by a clearAudio after {self.format.duration_s(cut - start):.2f} s"
        return f"; heard instead, from {when:.2f} s into the call: {what}"

    def _name(self, got: bytes) -> str:
        seconds = self.format.duration_s(len(got))
        for name, audio in self._prompts.items():
            known = audio.encoded(self.format)
            n = min(len(known), len(got))
            if n and got[:n] == known[:n]:
                return f"the prompt {name!r} ({audio.duration_s:.2f} s)"
        samples = decode(got, self.format).astype(np.float64)
        rms = float(np.sqrt(np.mean(samples**2)))
        if rms < 1.0:
            return f"{seconds:.2f} s of silence"
        dbfs = 20 * np.log10(rms / 32768)
        spectrum = np.abs(np.fft.rfft(samples))
        peak_hz = float(np.argmax(spectrum[1:]) + 1) * self.format.sample_rate / samples.size
        return f"{seconds:.2f} s of other audio ({dbfs:.0f} dBFS, strongest near {peak_hz:.0f} Hz)"

    def _audio(self, raw: bytes) -> Audio:
        return Audio(decode(raw, self.format), self.format.sample_rate)

    # -- playing ----------------------------------------------------------------------------

    def _poke(self) -> None:
        self._heard_changed.set()
        self._heard_changed = trio.Event()
        self._queue_changed.set()
        self._queue_changed = trio.Event()

    async def _wait_heard_change(self) -> None:
        await self._heard_changed.wait()

    def _enqueue_audio(self, command: PlayAudio) -> str | None:
        """Queue a ``playAudio``; the reason it was refused, or None."""
        if (
            command.content_type != self.format.encoding
            or command.sample_rate != self.format.sample_rate
        ):
            return (
                f"playAudio in {command.content_type} at {command.sample_rate} Hz on a "
                f"{self.format.content_type} stream"
            )
        self._queue.append(base64.b64decode(command.payload))
        self.max_queued_s = max(self.max_queued_s, self.queued_s)
        return None

    def _playing_left_s(self) -> float:
        """Seconds of the chunk playing now that have not been played yet."""
        if self._playing_scope is None:
            return 0.0
        length = self.format.duration_s(len(self._playing_item))
        return max(0.0, length - (trio.current_time() - self._playing_began))

    def _stop_playing(self) -> float:
        """Cut the chunk playing now: the caller heard it up to this moment. Returns the
        seconds of it left unplayed."""
        if self._playing_scope is None:
            return 0.0
        item, began = self._playing_item, self._playing_began
        played = min(self.format.duration_s(len(item)), trio.current_time() - began)
        n = int(played * self.format.sample_rate) * self.format.sample_width
        self._heard += item[:n]
        self._playing_scope.cancel()
        self._playing_scope = None
        return self.format.duration_s(len(item) - n)

    async def _clear(self) -> None:
        waiting = sum(len(i) for i in self._queue if isinstance(i, bytes))
        self._queue.clear()
        dropped = self.format.duration_s(waiting) + self._stop_playing()
        if dropped > 0:
            self._cuts.append(len(self._heard))
        self._idle = True
        self.cleared.append(Cleared(trio.current_time(), dropped))
        await self._send(
            encode_event(ClearedAudio(sequence_number=next(self._seq), stream_id=self.stream_id))
        )

    async def _play(self) -> None:
        """Plays the queue at real-time rate; acks each checkpoint as it is reached."""
        while not self._closed.is_set():
            if not self._queue:
                self._idle = True
                await self._queue_changed.wait()
                continue
            item = self._queue.popleft()
            if isinstance(item, str):
                played = PlayedStream(
                    sequence_number=next(self._seq), stream_id=self.stream_id, name=item
                )
                await self._send(encode_event(played))
                continue
            if self._idle:
                self._idle = False
                self._starts.append(_Start(trio.current_time(), len(self._heard)))
                self._poke()
            with trio.CancelScope() as scope:
                self._playing_scope = scope
                self._playing_item, self._playing_began = item, trio.current_time()
                await trio.sleep(self.format.duration_s(len(item)))
            if not scope.cancelled_caught:  # a cut chunk was accounted by _stop_playing
                self._playing_scope = None
                self._heard += item
            self._poke()
