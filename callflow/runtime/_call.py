"""``Call``: what a flow holds, and the per-call state behind it.

One :class:`Call` exists per answered call, made by :func:`~callflow.runtime.run_call` when
Plivo's ``start`` event arrives. Its methods turn into Plivo's wire messages (PROTOCOL.md §3);
events from Plivo (PROTOCOL.md §2) wake its waiters. All of it runs inside the call's nursery:
nothing outlives the call.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import itertools
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Mapping, Sequence
from contextlib import aclosing
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import attrs
import numpy as np
import numpy.typing as npt
import trio

from callflow.audio import Audio, chunk_bytes, chunk_payloads, decode
from callflow.protocol import (
    Checkpoint,
    ClearAudio,
    ExtraHeaders,
    Format,
    ProtocolError,
    SendDTMF,
    encode,
    play_audio_message,
    play_audio_prefix,
)
from callflow.runtime import _collect
from callflow.runtime._errors import CallEnded, CallflowError
from callflow.runtime._ledger import Ledger, Mark
from callflow.runtime._rest import PlivoRest, RestError
from callflow.runtime._results import (
    BargeIn,
    GatherResult,
    Invalid,
    MachineDetection,
    NoInput,
    Recording,
)
from callflow.runtime._transport import Transport, TransportClosed
from callflow.runtime._vad import Vad, VadSettings

log = logging.getLogger("callflow.call")

T = TypeVar("T")

AudioSource = Audio | str | os.PathLike[str] | bytes | AsyncIterable[Audio | bytes]
"""What ``say``/``play`` accept: an :class:`Audio`, a WAV file path, raw bytes already in the
stream's wire format, or an async iterable of ``Audio``/raw-bytes chunks (a streaming TTS).
An async iterable is read as its chunks arrive, and its iterator is closed (``aclose``) when
the ``say``/``play`` ends, finished or stopped early."""


MIN_LEAD_S = max(chunk_bytes(fmt) / fmt.bytes_per_second for fmt in Format)
"""The shortest ``RuntimeConfig.max_lead_s``: the longest ``playAudio`` chunk of any format,
1.52 s of μ-law (``callflow.audio.chunk_bytes``). A chunk is never split, so a smaller lead
could not be kept."""


def _lead(_: object, __: object, value: float) -> None:
    if not value >= MIN_LEAD_S:
        raise ValueError(
            f"max_lead_s must be at least {MIN_LEAD_S:.2f} s (one playAudio chunk), not {value}"
        )


@attrs.frozen(kw_only=True)
class RuntimeConfig:
    """Per-call runtime limits. All durations are seconds.

    Attributes:
        start_timeout_s: how long to wait for Plivo's ``start`` event after the socket opens.
        max_lead_s: the most audio callflow keeps queued at Plivo beyond what checkpoint acks
            confirm played (Plivo's queue holds about 60 s, PROTOCOL.md §3). Bounds how long a
            ``clear`` has to drop and how far ``heard_s`` can lag. At least
            :data:`MIN_LEAD_S` (1.52 s, one chunk).
        mark_interval_s: a checkpoint is sent whenever this much audio has been sent without
            one, so acks keep flowing for long or streamed prompts.
        clear_timeout_s: how long ``clear`` waits for ``clearedAudio`` before assuming it.
        hangup_grace_s: after the stream closes, how long the flow may run its clean-up
            (``finally`` blocks) before it is cancelled.
        drain_timeout_s: extra time, beyond the queued audio's duration, that a flow returning
            normally waits for its queued audio to play before the stream is closed.
        dtmf_buffer: type-ahead keys kept; beyond it the oldest is dropped and logged.
        write_timeout_s: how long one send to Plivo may take before the call is given up.

    Raises:
        ValueError: ``max_lead_s`` below :data:`MIN_LEAD_S`.
    """

    start_timeout_s: float = 10.0
    max_lead_s: float = attrs.field(default=5.0, validator=_lead)
    mark_interval_s: float = 0.5
    clear_timeout_s: float = 2.0
    hangup_grace_s: float = 2.0
    drain_timeout_s: float = 2.0
    dtmf_buffer: int = 64
    write_timeout_s: float = 10.0


@attrs.frozen(kw_only=True)
class CallInfo:
    """Who and what the call is, from Plivo's ``start`` event and the answer webhook.

    Attributes:
        call_id: Plivo's CallUUID (``start.callId``).
        stream_id: ``start.streamId``; names this stream in every outbound message.
        account_id: ``start.accountId``.
        tracks: ``start.tracks``, e.g. ``("inbound",)``.
        format: the stream's audio :class:`Format` both ways.
        extra_headers: the ``extraHeaders`` of the ``<Stream>``, parsed (raw string kept on
            ``extra_headers.raw``).
        answer_params: the answer webhook's form parameters (``CallUUID``, ``From``, ``To``,
            ``Direction``, ``CallStatus``, …; PROTOCOL.md §1), empty when unknown.
    """

    call_id: str
    stream_id: str
    account_id: str
    tracks: tuple[str, ...]
    format: Format
    extra_headers: ExtraHeaders
    answer_params: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class Playback:
    """The outcome of :meth:`Call.say`.

    Attributes:
        completed: True when Plivo confirmed the whole prompt played.
        duration_s: the prompt's length in seconds (of what was sent).
        heard_s: how much of it the caller heard, in seconds, to within one chunk (from
            checkpoint acks; equals ``duration_s`` when completed).
        interrupted_by: what stopped it early: the DTMF digit that barged in (``"5"``),
            ``"speech"``, ``"cleared"`` (another task called ``clear()``), or ``None`` when
            completed. (A hangup raises :class:`CallEnded` instead; a cancelled ``say``
            re-raises the cancellation after clearing.)
    """

    completed: bool
    duration_s: float
    heard_s: float
    interrupted_by: str | None = None


@attrs.frozen
class StatusEvent:
    """A status callback Plivo sent for this call (PROTOCOL.md §6), with all its params.

    Attributes:
        event: the ``Event`` param (an open string: ``StartStream``, ``StopStream``,
            ``PlayedStream``, ``started``, …).
        params: every form param Plivo sent.
    """

    event: str
    params: Mapping[str, str]


def _b64_len(payload: str) -> int:
    """Raw bytes in a base64 string (no decoding)."""
    return len(payload) // 4 * 3 - (payload[-2:].count("=") if payload else 0)


class InboundAudio:
    """The caller's audio, frame by frame, from :meth:`Call.listen`.

    An async iterator of 1-D ``np.int16`` arrays at the stream's sample rate (each about
    20 ms: 160 samples at 8 kHz, 320 at 16 kHz). It holds at most ``max_frames`` frames; when
    a slow consumer lets it fill, the *oldest* frame is dropped and counted in ``dropped``, so
    the call's reader never waits. Use it as an async context manager: while it is open the
    runtime decodes media frames; once closed, none are decoded for it.
    """

    def __init__(self, call: Call, max_frames: int) -> None:
        if max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, not {max_frames}")
        self._call = call
        self._frames: collections.deque[npt.NDArray[np.int16]] = collections.deque(
            maxlen=max_frames
        )
        self._arrived = trio.Event()
        self._closed = False
        self.dropped = 0
        """Frames lost because the consumer fell behind."""
        self.sample_rate = call.info.format.sample_rate
        """Samples per second (Hz) of every frame."""

    def _push(self, frame: npt.NDArray[np.int16]) -> None:
        if len(self._frames) == self._frames.maxlen:
            self.dropped += 1
        self._frames.append(frame)
        self._arrived.set()

    def _wake(self) -> None:
        self._arrived.set()

    async def receive(self) -> npt.NDArray[np.int16]:
        """The next frame.

        Raises:
            CallEnded: the call is over and every buffered frame has been taken.
            trio.ClosedResourceError: this listener was closed.
        """
        while not self._frames:
            if self._closed:
                raise trio.ClosedResourceError("listener is closed")
            self._call._raise_if_ended()
            self._arrived = trio.Event()
            await self._arrived.wait()
        return self._frames.popleft()

    def close(self) -> None:
        """Stop receiving: the runtime stops decoding for this listener."""
        self._closed = True
        self._call._listeners.discard(self)
        self._arrived.set()

    def __aiter__(self) -> InboundAudio:
        return self

    async def __anext__(self) -> npt.NDArray[np.int16]:
        try:
            return await self.receive()
        except (CallEnded, trio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def __aenter__(self) -> InboundAudio:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Call:
    """One live call, as a flow sees it. Made by the runtime; flows never construct it.

    Every method that talks to Plivo raises :class:`CallEnded` once the call is over. Keys
    pressed at any time are kept in order (type-ahead) until a flow takes them. Methods are
    safe to call from several tasks of the flow: one writer keeps wire order equal to call
    order.
    """

    def __init__(
        self,
        info: CallInfo,
        transport: Transport,
        config: RuntimeConfig | None = None,
        rest: PlivoRest | None = None,
    ) -> None:
        self.info = info
        """Ids, format, extra headers and answer-webhook params (:class:`CallInfo`)."""
        self._transport = transport
        self._config = config or RuntimeConfig()
        self._format = info.format
        self._prefix = play_audio_prefix(info.stream_id, info.format)
        self._write_lock = trio.StrictFIFOLock()
        self._names = itertools.count(1)
        self._used_names: set[str] = set()
        self._ledger = Ledger()
        self._mark_waiters: dict[str, trio.Event] = {}
        self._mark_results: dict[str, bool] = {}
        self._progress = trio.Event()  # set on every ack/clear; replaced after
        self._clear_done = trio.Event()
        self._clear_epoch = 0
        self._latest_clear = self._clear_done
        self._barge_in_pending = False
        self._heard_at_clear = 0.0
        self._key_watchers: list[Callable[[str], None]] = []
        self._frame_watchers: list[Callable[[npt.NDArray[np.int16]], None]] = []
        self._machine: MachineDetection | None = None
        self._machine_arrived = trio.Event()
        self._rest = rest
        self._rest_done = False
        self._wakeups: set[trio.Event] = set()
        self._transferred = False
        self.ended_by_plivo = False
        """Whether Plivo ended the stream (socket closed or ``stop``), not the flow."""
        self._dtmf: collections.deque[str] = collections.deque()
        self._dtmf_arrived = trio.Event()
        self._listeners: set[InboundAudio] = set()
        self._status: collections.deque[StatusEvent] = collections.deque(maxlen=256)
        self._status_arrived = trio.Event()
        self._ended: CallEnded | None = None
        self.frames_received = 0
        """Inbound media frames seen (decoded or not)."""
        self.protocol_errors = 0
        """Messages from Plivo that could not be read (each was logged)."""

    # -- the DSL --------------------------------------------------------------------------

    @property
    def call_id(self) -> str:
        """Plivo's CallUUID."""
        return self.info.call_id

    @property
    def headers(self) -> ExtraHeaders:
        """The stream's parsed ``extra_headers`` (PROTOCOL.md §2)."""
        return self.info.extra_headers

    @property
    def answer_params(self) -> Mapping[str, str]:
        """The answer webhook's form params (PROTOCOL.md §1)."""
        return self.info.answer_params

    @property
    def ended(self) -> bool:
        """Whether the call is over."""
        return self._ended is not None

    @property
    def queued_s(self) -> float:
        """Upper bound, in seconds, of the audio queued at Plivo and not yet confirmed played."""
        return self._ledger.queued_s

    async def play(self, source: AudioSource) -> float:
        """Queue ``source`` for playback and return once it is sent, not heard.

        Never queues more than ``RuntimeConfig.max_lead_s`` seconds beyond what Plivo has
        confirmed played: a long source is sent as playback progresses.

        Returns:
            The seconds of audio queued.

        Raises:
            CallEnded: the call is over.
            ValueError: raw bytes that are not whole samples of the stream's format.
            callflow.audio.AudioError: a WAV file that cannot be read.
        """
        start = self._ledger.sent_s
        async with aclosing(self._payloads(source)) as payloads:
            async for payload in payloads:
                await self._send_audio(payload)
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
        Keys pressed before this ``say`` began do not interrupt it.

        If the flow's own cancel scope ends the ``say`` (``trio.move_on_after`` around it), the
        queued audio is cleared the same way before the cancellation goes on; if another task
        calls ``clear()``, this returns ``completed=False, interrupted_by="cleared"``.

        Returns:
            A :class:`Playback`: ``completed``, ``duration_s``, ``heard_s`` (to within one
            chunk, from checkpoint acks and the real-time playback rate), ``interrupted_by``.

        Raises:
            CallEnded: the call is over.
        """
        trigger = BargeIn.of(barge_in)
        epoch = self._clear_epoch
        start = self._ledger.sent_s
        interrupted_by: str | None = None
        heard_at = 0.0
        completed = False
        unwatch = None
        try:
            with trio.CancelScope() as scope:

                def interrupt(cause: str) -> None:
                    nonlocal interrupted_by, heard_at
                    if interrupted_by is None:
                        interrupted_by = cause
                        heard_at = self._ledger.heard_position(trio.current_time())
                        scope.cancel()
                        if self._clear_epoch == epoch and self._ledger.queued_s > 0:
                            self._barge_in_pending = True  # the reader sends clearAudio next

                if trigger is not None:
                    unwatch = self._watch(trigger, interrupt)
                last: str | None = None
                async with aclosing(self._payloads(source)) as payloads:
                    async for payload in payloads:
                        if not await self._send_audio(payload, mark=False, epoch=epoch):
                            break
                        last = await self._send_mark()
                completed = (last is None or await self._wait_mark(last)) and (
                    self._clear_epoch == epoch
                )
        except trio.Cancelled:
            await self._clear_on_cancel(epoch)
            raise
        finally:
            if unwatch is not None:
                unwatch()
        end = self._ledger.sent_s
        duration = source.duration_s if isinstance(source, Audio) else end - start
        if completed:
            return Playback(True, duration, end - start)
        if interrupted_by is not None:
            if self._clear_epoch != epoch:  # the reader already sent clearAudio
                await self._wait_cleared(self._latest_clear)
            elif self._ledger.queued_s > 0:
                await self.clear()
        else:
            interrupted_by = "cleared"
            heard_at = self._heard_at_clear
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

    def _watch(self, trigger: BargeIn, interrupt: Callable[[str], None]) -> Callable[[], None]:
        """Call ``interrupt(cause)`` from the reader when ``trigger`` fires; returns the undo."""

        def on_key(digit: str) -> None:
            if trigger.matches_key(digit):
                interrupt(digit)

        vad_settings = trigger.vad
        vad = Vad(vad_settings) if vad_settings is not None else None

        def on_frame(frame: npt.NDArray[np.int16]) -> None:
            assert vad is not None
            if vad.push(frame, self._format.sample_rate) == "start":
                interrupt("speech")

        if trigger.keys:
            self._key_watchers.append(on_key)
        if vad is not None:
            self._frame_watchers.append(on_frame)

        def unwatch() -> None:
            if on_key in self._key_watchers:
                self._key_watchers.remove(on_key)
            if on_frame in self._frame_watchers:
                self._frame_watchers.remove(on_frame)

        return unwatch

    async def checkpoint(self, name: str | None = None) -> bool:
        """Wait until everything queued so far has played.

        Sends ``{"event":"checkpoint","streamId":…,"name":…}`` and waits for Plivo's
        ``playedStream`` with that name (PROTOCOL.md §3).

        Args:
            name: the checkpoint's name; unique per stream. ``None`` picks one.

        Returns:
            True when played; False when the audio before it was cleared (Plivo never acks a
            cleared checkpoint, PROTOCOL.md §2).

        Raises:
            ValueError: ``name`` was used before on this stream.
            CallEnded: the call is over.
        """
        if name is not None and name in self._used_names:
            raise ValueError(f"checkpoint name {name!r} already used on this stream")
        return await self._wait_mark(await self._send_mark(name))

    async def clear(self) -> None:
        """Stop playback now: Plivo drops every queued chunk (barge-in).

        Sends ``clearAudio`` and waits for ``clearedAudio`` (PROTOCOL.md §3), at most
        ``RuntimeConfig.clear_timeout_s`` seconds (then logs and goes on). Pending
        ``say``/``checkpoint`` calls return as not played.

        Raises:
            CallEnded: the call is over.
        """
        await self._wait_cleared(await self._send_clear())

    async def _send_clear(self) -> trio.Event:
        """Send ``clearAudio``; return the event ``clearedAudio`` will set. Everything before
        the first ``await`` happens at once, so a ``say`` resuming later already sees it."""
        self._clear_epoch += 1
        self._barge_in_pending = False  # any clearAudio answers a barge-in waiting for one
        self._heard_at_clear = self._ledger.heard_position(trio.current_time())
        done = self._latest_clear = self._clear_done
        self._ledger.clear_sent()
        await self._write(encode(ClearAudio(stream_id=self.info.stream_id)))
        return done

    async def _barge_in_clear(self) -> None:
        """Called by the reader right after the event that triggered a barge-in: send
        ``clearAudio`` from the reader itself, as soon as it runs, not when the interrupted
        ``say`` next runs (whichever of the two runs first sends it; the other sees it sent)."""
        if not self._barge_in_pending:
            return
        self._barge_in_pending = False
        if self._ended is None:
            with contextlib.suppress(CallEnded):
                await self._send_clear()

    async def _wait_cleared(self, done: trio.Event) -> None:
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

    async def wait_dtmf(self) -> str:
        """The next key the caller pressed: one of ``0-9 * # A-D``.

        Keys pressed earlier are kept in order (type-ahead), so none is lost between calls.

        Raises:
            CallEnded: the call is over and no key is left.
        """
        while not self._dtmf:
            self._raise_if_ended()
            self._dtmf_arrived = trio.Event()
            await self._dtmf_arrived.wait()
        return self._dtmf.popleft()

    def pending_dtmf(self) -> str:
        """The type-ahead keys not yet taken, oldest first (they stay pending)."""
        return "".join(self._dtmf)

    def flush_dtmf(self) -> str:
        """Discard the type-ahead keys; return them, oldest first."""
        keys = "".join(self._dtmf)
        self._dtmf.clear()
        return keys

    async def send_dtmf(self, digits: str) -> None:
        """Play DTMF ``digits`` (``0-9 * # A-D``) into the call (``sendDTMF``, PROTOCOL.md §3).

        Raises:
            callflow.protocol.ProtocolError: a character that is not a DTMF digit.
            CallEnded: the call is over.
        """
        await self._write(encode(SendDTMF(digits=digits)))

    def listen(self, *, max_frames: int = 250) -> InboundAudio:
        """The caller's audio from now on, as frames of int16 PCM at the stream's rate.

        ``max_frames`` bounds the buffer (250 frames = 5 s); a slow consumer loses the oldest
        frames (counted in ``InboundAudio.dropped``). Use as ``async with call.listen() as
        frames: async for frame in frames: …``.
        """
        listener = InboundAudio(self, max_frames)
        self._listeners.add(listener)
        return listener

    async def wait_status(self, event: str | None = None) -> StatusEvent:
        """The next status callback for this call (PROTOCOL.md §6), optionally of one ``event``.

        Callbacks that arrived before the call waited are kept (up to 256).

        Raises:
            CallEnded: the call is over.
        """
        while True:
            for index, status in enumerate(self._status):
                if event is None or status.event == event:
                    del self._status[index]
                    return status
            self._raise_if_ended()
            self._status_arrived = trio.Event()
            await self._status_arrived.wait()

    async def gather(
        self,
        prompt: AudioSource | Sequence[AudioSource] | None = None,
        *,
        max_digits: int = 99,
        min_digits: int = 1,
        timeout: float = 5.0,
        digit_timeout: float = 2.0,
        finish_on_key: str = "#",
        valid_digits: str = "1234567890*#",
        retries: int = 1,
        no_input: AudioSource | Sequence[AudioSource] | None = None,
        invalid: AudioSource | Sequence[AudioSource] | None = None,
        barge_in: bool = True,
        sensitive: bool = False,
    ) -> GatherResult:
        """Collect DTMF digits, as Plivo's ``<GetDigits>`` does (same names and defaults).

        Plays ``prompt`` (keys pressed while it plays interrupt it when ``barge_in`` and count
        toward the input; keys pressed before ``gather`` was called count too, and skip a
        barge-in prompt: type-ahead), then waits ``timeout`` seconds for the first key and
        ``digit_timeout`` seconds for each next one. Input ends at ``max_digits`` keys, at
        ``finish_on_key`` (not part of the value; ``""`` for none) or when a wait runs out.

        Args:
            prompt: what to play first; a list gives one prompt per attempt (the last
                repeats).
            max_digits: Plivo ``numDigits``, default 99.
            min_digits: fewer keys give ``Invalid``.
            timeout: seconds for the first key after the prompt (Plivo default 5).
            digit_timeout: seconds between keys (Plivo ``digitTimeout``, default 2).
            finish_on_key: Plivo ``finishOnKey``, default ``#``.
            valid_digits: Plivo ``validDigits``, default ``1234567890*#``; an input holding
                another key is ``Invalid``, judged once the input has ended (finish key,
                ``max_digits`` or a timeout), as Plivo does.
            retries: Plivo ``retries``: how many attempts in all (at least 1, default 1).
            no_input / invalid: played before the next attempt after ``NoInput`` /
                ``Invalid``; a list escalates per attempt.
            barge_in: keys interrupt the prompts.
            sensitive: keep the digits out of every log line (the result's ``repr`` masks
                them too), for PINs and card numbers.

        Returns:
            ``Digits(value)``, ``NoInput()`` or ``Invalid(value)``: the last attempt's outcome.

        Raises:
            ValueError: arguments Plivo would refuse.
            CallEnded: the call is over.
        """
        rules = _collect.DigitRules(
            max_digits=max_digits,
            min_digits=min_digits,
            timeout=timeout,
            digit_timeout=digit_timeout,
            finish_on_key=finish_on_key.upper(),
            valid_digits=valid_digits.upper(),
            barge_in=barge_in,
            sensitive=sensitive,
        )
        return await _collect.gather(
            self, prompt, rules, retries=retries, no_input=no_input, invalid=invalid
        )

    async def menu(
        self,
        prompt: AudioSource | Sequence[AudioSource],
        choices: Mapping[str, T],
        *,
        retries: int = 3,
        timeout: float = 5.0,
        no_input: AudioSource | Sequence[AudioSource] | None = None,
        invalid: AudioSource | Sequence[AudioSource] | None = None,
        barge_in: bool = True,
    ) -> T | Any | NoInput | Invalid:
        """One key among ``choices``, with counted, escalating prompts (VoiceXML ``<menu>``).

        ``prompt``, ``no_input`` and ``invalid`` may be lists: attempt *n* plays entry *n*
        (the last repeats), like VoiceXML's ``count``. A key not in ``choices`` is ``Invalid``.

        Args:
            choices: single DTMF keys to values; a value that is a :class:`~callflow.Flow` or
                an ``async def f(call)`` is a sub-flow: it runs, and its result is returned.
            retries: attempts in all (default 3).
            timeout: seconds to wait for the key after each prompt.

        Returns:
            The chosen value (or the sub-flow's result), or ``NoInput()`` / ``Invalid()``
            after the last attempt.

        Raises:
            ValueError: a choice key that is not one DTMF key.
            CallEnded: the call is over.
        """
        return await _collect.menu(
            self,
            prompt,
            {k.upper(): v for k, v in choices.items()},
            retries=retries,
            timeout=timeout,
            no_input=no_input,
            invalid=invalid,
            barge_in=barge_in,
        )

    async def record(
        self,
        *,
        max_s: float = 60.0,
        silence_s: float = 3.0,
        finish_on_key: str = "#",
        beep: bool = True,
        vad: VadSettings | None = None,
    ) -> Recording:
        """Record the caller (a voicemail), after a beep.

        Stops after ``max_s`` seconds, after ``silence_s`` seconds of continuous silence
        (counted from the beep, so a caller who never speaks ends it too), when a key in
        ``finish_on_key`` is pressed from the beep on (that key is consumed), or when the caller
        hangs up: a hangup ends the recording, not the method, so a voicemail left by
        hanging up is kept.

        Returns:
            A :class:`Recording`: ``audio`` (int16 at the stream rate), ``reason``
            (``"max_length"``, ``"silence"``, ``"key"``, ``"hangup"``), ``key``, ``speech``.

        Raises:
            ValueError: non-positive durations; a ``finish_on_key`` character that is not a
                DTMF key.
            CallEnded: the call was already over.
        """
        self._raise_if_ended()
        return await _collect.record(
            self,
            max_s=max_s,
            silence_s=silence_s,
            finish_on_key=finish_on_key.upper(),
            play_beep=beep,
            vad=vad,
        )

    async def wait_speech(self, *, vad: VadSettings | None = None) -> None:
        """Return when the caller starts speaking (energy VAD: a level above
        ``vad.threshold_dbfs`` held for ``vad.min_speech_s``, so a cough does not count).
        Bound it with ``trio.move_on_after``.

        Raises:
            CallEnded: the call is over.
        """
        await _collect.wait_speech(self, vad)

    async def wait_machine(self) -> MachineDetection:
        """Return when Plivo's machine detection reports an answering machine for this call
        (``Machine=true`` POSTed to the flow's ``<path>/machine``; seed ``004_…``), so the
        flow can switch to leaving a voicemail. Bound it with ``trio.move_on_after``.

        Raises:
            CallEnded: the call is over.
        """
        while self._machine is None:
            self._raise_if_ended()
            self._machine_arrived = trio.Event()
            await self._machine_arrived.wait()
        return self._machine

    async def hangup(self) -> None:
        """End the call now.

        With Plivo credentials (``PLIVO_AUTH_ID``/``PLIVO_AUTH_TOKEN``), hangs up over REST
        (``DELETE Call/{uuid}/``, PROTOCOL.md §8; 404 means already gone); then closes the
        stream, so the ``<Hangup/>`` after ``<Stream>`` in the answer XML ends the call even
        without credentials (PROTOCOL.md §1). Later operations raise :class:`CallEnded`.
        Idempotent.
        """
        if self._ended is None:
            self._end("hung up by the flow")
            await self._rest_hangup()
        with trio.CancelScope(shield=True):
            await self._transport.aclose(1000, "call ended by flow")

    async def transfer(self, url: str, *, method: str = "POST") -> None:
        """Hand the call to other XML at ``url`` (Plivo fetches it and runs it) and end this
        flow's part: REST ``POST Call/{uuid}/`` with ``aleg_url`` (PROTOCOL.md §8), then the
        stream is closed. The call is not hung up.

        Raises:
            CallflowError: no Plivo credentials are configured (a transfer needs REST).
            RestError: Plivo refused the transfer (the call goes on, untransferred).
            CallEnded: the call is over.
        """
        self._raise_if_ended()
        if self._rest is None:
            raise CallflowError(
                f"call={self.call_id}: transfer needs PLIVO_AUTH_ID and PLIVO_AUTH_TOKEN"
            )
        await self._rest.transfer(self.call_id, url, method=method)
        self._transferred = True
        self._end(f"transferred to {url}")
        with trio.CancelScope(shield=True):
            await self._transport.aclose(1000, "call transferred")

    async def _rest_hangup(self) -> None:
        """REST hangup when credentials exist and the call is still ours to end. Shielded, and
        bounded as a whole by the client's ``timeout_s`` (httpx's own timeouts are per read,
        so an API answering a byte at a time would never trip them); a failure or the bound
        running out is logged, never raised."""
        rest = self._rest
        if rest is None or self._transferred or self.ended_by_plivo or self._rest_done:
            return
        self._rest_done = True
        with trio.CancelScope(shield=True), trio.move_on_after(rest.timeout_s) as bound:
            try:
                gone = not await rest.hangup(self.call_id)
                log.info("call=%s REST hangup%s", self.call_id, " (already gone)" if gone else "")
            except RestError as exc:
                log.error("call=%s REST hangup failed: %s", self.call_id, exc)
        if bound.cancelled_caught:
            log.error(
                "call=%s REST hangup failed: no answer from Plivo within %.1f s",
                self.call_id,
                rest.timeout_s,
            )

    def _take_key(self, digit: str) -> None:
        """Consume the oldest pending ``digit`` (a key that ended a recording)."""
        with contextlib.suppress(ValueError):
            self._dtmf.remove(digit)

    async def _wait_or_end(self, event: trio.Event) -> None:
        """Wait for ``event``; the call ending wakes it too."""
        self._wakeups.add(event)
        try:
            await event.wait()
        finally:
            self._wakeups.discard(event)

    # -- sending ----------------------------------------------------------------------------

    async def _payloads(self, source: AudioSource) -> AsyncGenerator[str, None]:
        fmt = self._format
        if isinstance(source, Audio):
            for payload in source.payloads(fmt):
                yield payload
        elif isinstance(source, bytes | bytearray | memoryview):
            for payload in self._raw_payloads(bytes(source)):
                yield payload
        elif isinstance(source, str | os.PathLike):
            for payload in _load_wav(Path(source)).payloads(fmt):
                yield payload
        elif isinstance(source, AsyncIterable):
            # A say that stops early (barge-in, clear, cancel) never resumes the source, so
            # its iterator is closed here rather than left suspended for the garbage
            # collector to finalize at some odd later moment (an async generator's
            # ``finally`` would then run outside the call).
            chunks = aiter(source)
            try:
                async for chunk in chunks:
                    if isinstance(chunk, Audio):
                        for payload in chunk.payloads(fmt):
                            yield payload
                    else:
                        for payload in self._raw_payloads(bytes(chunk)):
                            yield payload
            finally:
                close = getattr(chunks, "aclose", None)
                if close is not None:
                    await close()
        else:
            raise TypeError(f"cannot play {type(source).__name__}: {AudioSource}")

    def _raw_payloads(self, raw: bytes) -> tuple[str, ...]:
        fmt = self._format
        if len(raw) % fmt.sample_width:
            raise ValueError(
                f"{len(raw)} bytes is not a whole number of {fmt.content_type} samples"
            )
        return chunk_payloads(raw, fmt)

    async def _send_audio(
        self, payload: str, *, mark: bool = True, epoch: int | None = None
    ) -> bool:
        """Send one payload once the lead allows; False (nothing sent) if a clear happened
        since ``epoch``."""
        seconds = _b64_len(payload) / self._format.bytes_per_second
        await self._wait_for_room(seconds)
        if epoch is not None and epoch != self._clear_epoch:
            return False
        await self._write(play_audio_message(self._prefix, payload))
        self._ledger.audio_sent(seconds, trio.current_time())
        if mark and self._ledger.unmarked_s >= self._config.mark_interval_s:
            await self._send_mark()
        return True

    async def _wait_for_room(self, seconds: float) -> None:
        """Wait until sending ``seconds`` more keeps the queue within ``max_lead_s``."""
        ledger = self._ledger
        while ledger.queued_s > 0 and ledger.queued_s + seconds > self._config.max_lead_s:
            if ledger.unmarked_s > 0 and ledger.marks_pending == 0:
                await self._send_mark()
            self._raise_if_ended()
            await self._progress.wait()

    async def _send_mark(self, name: str | None = None) -> str:
        if name is None:
            name = f"cf{next(self._names)}"
            while name in self._used_names:
                name = f"cf{next(self._names)}"
        self._used_names.add(name)
        self._mark_waiters[name] = trio.Event()
        self._ledger.mark(name)
        await self._write(encode(Checkpoint(stream_id=self.info.stream_id, name=name)))
        return name

    async def _wait_mark(self, name: str) -> bool:
        event = self._mark_waiters.get(name)
        while event is not None and not event.is_set():
            self._raise_if_ended()
            await event.wait()
        self._mark_waiters.pop(name, None)
        if name not in self._mark_results:  # woken by the end of the call, not by Plivo
            self._raise_if_ended()
        return self._mark_results.pop(name, False)

    async def _write(self, message: str) -> None:
        """Send one message. The send itself is shielded from cancellation (a send cut in
        half would break the WebSocket for the whole call) but bounded by
        ``RuntimeConfig.write_timeout_s``, after which the stream is given up."""
        self._raise_if_ended()
        async with self._write_lock:
            self._raise_if_ended()
            with trio.CancelScope(shield=True) as shield:
                shield.relative_deadline = self._config.write_timeout_s
                try:
                    await self._transport.send(message)
                except TransportClosed as exc:
                    # The call was not ended (checked above), so callflow did not close the
                    # stream: Plivo's side did, and the reader has not seen it yet. Same as
                    # the reader seeing it: no REST hangup for a call Plivo ended.
                    if self._ended is None:
                        self.ended_by_plivo = True
                    self._end(_closed_reason(exc))
            if shield.cancelled_caught:
                log.error(
                    "call=%s Plivo did not take a message within %.0f s; ending the call",
                    self.call_id,
                    self._config.write_timeout_s,
                )
                self._end("write timed out")
                with trio.CancelScope(shield=True):
                    await self._transport.aclose(1011, "write timed out")
            self._raise_if_ended()

    # -- events from the reader (called inline, never blocking) -------------------------------

    def _raise_if_ended(self) -> None:
        if self._ended is not None:
            raise CallEnded(self._ended.call_id, self._ended.reason)

    @property
    def _wants_media(self) -> bool:
        """Whether anyone needs inbound audio now (a ``listen()``, or a speech VAD)."""
        return bool(self._listeners or self._frame_watchers)

    def _on_media(self, payload: str, track: str) -> None:
        """One inbound ``media`` frame, handed over only while :attr:`_wants_media`: decoded
        and given to listeners and watchers (the caller's track only). An undecodable
        ``media.payload`` (bad base64, or L16 of an odd number of bytes) is counted in
        :attr:`protocol_errors` and logged with the call id, like any unreadable message; the
        frame is skipped and the call goes on."""
        if track != "inbound":
            return
        try:
            frame = decode(base64.b64decode(payload), self._format)
        except ValueError as exc:  # binascii.Error is a ValueError
            self.protocol_errors += 1
            error = ProtocolError(
                f"payload is not {self._format.content_type} audio in base64 ({exc})",
                event="media",
                field="media.payload",
            )
            log.warning("call=%s unreadable message from Plivo: %s", self.call_id, error)
            return
        for listener in self._listeners:
            listener._push(frame)
        for watcher in list(self._frame_watchers):
            watcher(frame)

    def _on_dtmf(self, digit: str) -> None:
        if len(self._dtmf) >= self._config.dtmf_buffer:
            # The key itself is not logged: it may belong to a PIN a later
            # ``gather(sensitive=True)`` would have kept out of every log line.
            self._dtmf.popleft()
            log.warning(
                "call=%s type-ahead buffer full (%d keys); dropped the oldest key",
                self.call_id,
                self._config.dtmf_buffer,
            )
        self._dtmf.append(digit)
        self._dtmf_arrived.set()
        for watcher in list(self._key_watchers):
            watcher(digit)

    def _on_played(self, name: str) -> None:
        marks = self._ledger.played(name, trio.current_time())
        if marks is None:
            log.debug(
                "call=%s playedStream for unknown or cleared checkpoint %r", self.call_id, name
            )
            return
        self._resolve(marks, played=True)

    def _on_cleared(self) -> None:
        self._resolve(self._ledger.cleared(), played=False)
        self._clear_done.set()
        self._clear_done = trio.Event()

    def _on_machine(self, detection: MachineDetection) -> None:
        self._machine = detection
        self._machine_arrived.set()

    def _on_status(self, status: StatusEvent) -> None:
        self._status.append(status)
        self._status_arrived.set()

    def _resolve(self, marks: Sequence[Mark], *, played: bool) -> None:
        for mark in marks:
            event = self._mark_waiters.get(mark.name)
            if event is not None:
                self._mark_results[mark.name] = played
                event.set()
        self._progress.set()
        self._progress = trio.Event()

    def _end(self, reason: str) -> None:
        """The call is over: wake every waiter; they raise CallEnded."""
        if self._ended is not None:
            return
        self._ended = CallEnded(self.call_id, reason)
        for mark in self._ledger.drop_all():  # woken without a result: they raise CallEnded
            event = self._mark_waiters.get(mark.name)
            if event is not None:
                event.set()
        self._progress.set()
        for event in (
            self._dtmf_arrived,
            self._status_arrived,
            self._clear_done,
            self._machine_arrived,
        ):
            event.set()
        for event in list(self._wakeups):
            event.set()
        for listener in list(self._listeners):
            listener._wake()


def _closed_reason(exc: TransportClosed) -> str:
    return f"stream closed (code {exc.code})" if exc.code is not None else "stream closed"


@attrs.frozen
class _WavKey:
    path: Path
    mtime_ns: int
    size: int


_wav_cache: dict[_WavKey, Audio] = {}
_WAV_CACHE_MAX = 256


def _load_wav(path: Path) -> Audio:
    """A WAV file as Audio, cached by path, mtime and size, so a prompt file is read and
    encoded once however many calls play it."""
    stat = path.stat()
    key = _WavKey(path.resolve(), stat.st_mtime_ns, stat.st_size)
    audio = _wav_cache.get(key)
    if audio is None:
        if len(_wav_cache) >= _WAV_CACHE_MAX:
            _wav_cache.pop(next(iter(_wav_cache)))
        audio = _wav_cache[key] = Audio.from_wav(path)
    return audio
