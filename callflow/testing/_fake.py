"""``FakePlivo``: plays Plivo's part of one call, in virtual time or over a real socket."""

from __future__ import annotations

import base64
import collections
import itertools
import logging
import math
import uuid
from collections.abc import Mapping
from types import TracebackType

import attrs
import trio

from callflow._flow import Flow
from callflow.audio import Audio, decode
from callflow.audio import encode as encode_audio
from callflow.protocol import (
    Checkpoint,
    ClearAudio,
    ClearedAudio,
    Dtmf,
    ExtraHeaders,
    Format,
    Media,
    PlayAudio,
    PlayedStream,
    ProtocolError,
    SendDTMF,
    Start,
    encode_event,
    parse_command,
)
from callflow.runtime import (
    PlivoRest,
    RuntimeConfig,
    Transport,
    TransportClosed,
    memory_transport_pair,
)
from callflow.runtime._session import LiveCalls, run_call

log = logging.getLogger("callflow.testing")

FRAME_S = 0.02
"""Plivo sends one inbound media frame every 20 ms (PROTOCOL.md §2)."""


@attrs.frozen
class Received:
    """A message callflow sent, as the fake received it.

    Attributes:
        time: ``trio.current_time()`` when it arrived (virtual seconds under a MockClock).
        command: the parsed command (``PlayAudio``, ``Checkpoint``, ``ClearAudio``,
            ``SendDTMF``).
        text: the raw JSON text.
    """

    time: float
    command: PlayAudio | Checkpoint | ClearAudio | SendDTMF
    text: str


@attrs.frozen
class Cleared:
    """A ``clearAudio`` the fake obeyed: at ``time`` it dropped ``dropped_s`` seconds of queued
    audio (including the unplayed rest of the chunk that was playing)."""

    time: float
    dropped_s: float


class FakePlivo:
    """Plays Plivo's side of one call, as PROTOCOL.md describes, and records what the caller
    heard.

    In memory (``FakePlivo(flow)``) it runs the flow with callflow's own runtime over an
    in-memory transport, so tests run on trio's autojump ``MockClock`` and a 5 s timeout costs
    no real time. Over a real socket see :func:`callflow.testing.dial`.

    Like Plivo it: sends ``start`` in the flow's format, then an inbound media frame every
    20 ms (silence, or what :meth:`speak` gives); plays ``playAudio`` chunks at real-time
    rate, one after another; acks a ``checkpoint`` with ``playedStream`` only when all audio
    queued before it has played; on ``clearAudio`` drops everything queued (un-acked
    checkpoints included, never acked) and answers ``clearedAudio``; sends ``dtmf`` for
    :meth:`press`; closes the socket when the caller hangs up.

    Use it as an async context manager; leaving it hangs up (if the flow has not) and waits
    for the call to end.
    """

    def __init__(
        self,
        flow: Flow | None = None,
        *,
        format: Format | None = None,
        call_id: str | None = None,
        stream_id: str | None = None,
        account_id: str = "MAFAKEACCOUNT0000000",
        extra_headers: str = "{}",
        answer_params: Mapping[str, str] | None = None,
        send_media: bool = True,
        config: RuntimeConfig | None = None,
        rest: PlivoRest | None = None,
        transport: Transport | None = None,
    ) -> None:
        if flow is None and (transport is None or format is None):
            raise TypeError("FakePlivo needs a flow, or a transport and a format")
        self.flow = flow
        self.format: Format = format or flow.format  # type: ignore[union-attr]
        self.call_id = call_id or str(uuid.uuid4())
        self.stream_id = stream_id or str(uuid.uuid4())
        self.account_id = account_id
        self.extra_headers = extra_headers
        self.answer_params = dict(answer_params or {"CallUUID": self.call_id})
        self.send_media = send_media
        self.config = config
        self.rest = rest
        self.live_calls = LiveCalls()
        self._transport = transport
        self._seq = itertools.count(0)
        self._chunk = itertools.count(1)
        self._queue: collections.deque[bytes | str] = collections.deque()
        self._queue_changed = trio.Event()
        self._heard = bytearray()
        self._heard_changed = trio.Event()
        self._cursor = 0
        self._playing_scope: trio.CancelScope | None = None
        self._playing_item = b""
        self._playing_began = 0.0
        self._speech_done = trio.Event()
        self._speech: collections.deque[bytes] = collections.deque()
        self._closed = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._server_done = trio.Event()
        self.received: list[Received] = []
        """Every message callflow sent, in order."""
        self.cleared: list[Cleared] = []
        """Every ``clearAudio`` obeyed, in order."""
        self.sent_dtmf = ""
        """Digits callflow played into the call with ``sendDTMF``."""
        self.max_queued_s = 0.0
        """The most audio, in seconds, ever held unplayed at once (the queue plus the rest of
        the chunk playing), as :attr:`queued_s` measures it."""
        self.protocol_errors: list[str] = []
        """Messages from callflow the fake could not read (each also logged)."""
        self.close_code: int | None = None
        """The close code when callflow closed the stream."""

    # -- what the caller did and heard -----------------------------------------------------

    @property
    def heard(self) -> Audio:
        """Everything the caller has heard so far, as :class:`Audio` at the stream's rate."""
        return Audio(decode(bytes(self._heard), self.format), self.format.sample_rate)

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

    def _playing_left_s(self) -> float:
        """Seconds of the chunk playing now that have not been played yet."""
        if self._playing_scope is None:
            return 0.0
        length = self.format.duration_s(len(self._playing_item))
        return max(0.0, length - (trio.current_time() - self._playing_began))

    @property
    def hung_up_flag(self) -> bool:
        """Whether the stream is closed (by either side)."""
        return self._closed.is_set()

    async def hears(self, expected: Audio | None = None) -> Audio:
        """Wait until the caller has heard ``expected`` next, and check it.

        Compares in the stream's wire encoding (what callflow sends is what Plivo plays), from
        where the last ``hears`` stopped. With ``expected=None``, waits until playback goes
        idle (nothing queued) and returns what was heard since the last ``hears``. Wrap it in
        ``trio.fail_after`` to bound the wait.

        Raises:
            AssertionError: the caller heard something else, or the call ended first.
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
            return Audio(decode(got, self.format), self.format.sample_rate)
        want = expected.encoded(self.format)
        while len(self._heard) - self._cursor < len(want):
            if self._closed.is_set() and not self._queue and self._playing_scope is None:
                heard_s = self.format.duration_s(len(self._heard) - self._cursor)
                raise AssertionError(
                    f"call ended after the caller heard {heard_s:.2f} s "
                    f"of the expected {expected.duration_s:.2f} s"
                )
            await self._wait_heard_change()
        got = bytes(self._heard[self._cursor : self._cursor + len(want)])
        if got != want:
            first = next(i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b)
            raise AssertionError(
                f"the caller heard different audio: first difference at "
                f"{self.format.duration_s(first):.3f} s into the expected "
                f"{expected.duration_s:.2f} s"
            )
        self._cursor += len(want)
        return expected

    def skip_heard(self) -> float:
        """Move the ``hears`` cursor to now; return the seconds skipped."""
        skipped = len(self._heard) - self._cursor
        self._cursor = len(self._heard)
        return self.format.duration_s(skipped)

    async def wait_for(self, command_type: type, *, after: int = 0) -> Received:
        """Wait for the first message of ``command_type`` (e.g. ``ClearAudio``) at index
        ``after`` or later in :attr:`received`; return it."""
        while True:
            for item in self.received[after:]:
                if isinstance(item.command, command_type):
                    return item
            if self._closed.is_set():
                raise AssertionError(f"call ended before callflow sent {command_type.__name__}")
            await self._wait_heard_change()

    # -- what the caller does --------------------------------------------------------------

    async def press(self, digits: str, *, gap: float = 0.1) -> None:
        """Press keys: one ``dtmf`` event per digit, ``gap`` seconds apart (PROTOCOL.md §2).

        Raises:
            callflow.protocol.ProtocolError: a character that is not a DTMF digit.
        """
        for index, digit in enumerate(digits):
            if index:
                await trio.sleep(gap)
            event = Dtmf(
                sequence_number=next(self._seq),
                stream_id=self.stream_id,
                digit=digit,
                track="inbound",
                timestamp_ms=int(trio.current_time() * 1000),
                extra_headers=ExtraHeaders.parse(self.extra_headers),
            )
            await self._send(encode_event(event))

    async def speak(self, audio: Audio) -> None:
        """Send ``audio`` as the caller's voice (inbound media, 20 ms frames, in real time);
        returns once it has all been sent, or when the call ends first (the rest is never
        sent).

        Raises:
            RuntimeError: the fake was made with ``send_media=False``, so no frame would ever
                carry the speech.
        """
        if not self.send_media:
            raise RuntimeError("speak() needs FakePlivo(send_media=True): no media is sent")
        raw = audio.encoded(self.format)
        frame = int(self.format.bytes_per_second * FRAME_S)
        done = trio.Event()
        for start in range(0, len(raw), frame):
            self._speech.append(raw[start : start + frame])
        self._speech.append(b"")  # end marker
        self._speech_done = done
        if self._closed.is_set():
            self._set_closed()
        await done.wait()

    async def send_raw(self, text: str) -> None:
        """Send any text frame as if Plivo sent it (garbage, unknown events, odd shapes)."""
        await self._send(text)

    async def hang_up(self) -> None:
        """The caller hangs up: Plivo closes the WebSocket."""
        if not self._closed.is_set():
            await self._transport_or_fail().aclose(1000, "caller hung up")
            self._set_closed()

    async def hung_up(self) -> int | None:
        """Wait until callflow ends the call (closes the stream); return the close code."""
        await self._closed.wait()
        if self.flow is not None:
            await self._server_done.wait()
        return self.close_code

    # -- running ------------------------------------------------------------------------------

    async def __aenter__(self) -> FakePlivo:
        self._nursery_manager = trio.open_nursery()
        self._nursery = await self._nursery_manager.__aenter__()
        if self.flow is not None:
            plivo_side, server_side = memory_transport_pair()
            self._transport = plivo_side
            flow = self.flow

            async def serve() -> None:
                try:
                    await run_call(
                        flow,
                        server_side,
                        answer_params=self.answer_params,
                        live_calls=self.live_calls,
                        config=self.config,
                        rest=self.rest,
                    )
                finally:
                    self._server_done.set()

            self._nursery.start_soon(serve)
        else:
            self._server_done.set()
        await self._send(encode_event(self._start_event()))
        self._nursery.start_soon(self._read)
        self._nursery.start_soon(self._play)
        if self.send_media:
            self._nursery.start_soon(self._media)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._nursery is not None
        try:
            if exc is None:
                await self.hang_up()
                await self._server_done.wait()
            self._nursery.cancel_scope.cancel()
        finally:
            result = await self._nursery_manager.__aexit__(exc_type, exc, tb)
        return result

    def _start_event(self) -> Start:
        return Start(
            sequence_number=next(self._seq),
            call_id=self.call_id,
            stream_id=self.stream_id,
            account_id=self.account_id,
            tracks=("inbound",),
            encoding=self.format.encoding,
            sample_rate=self.format.sample_rate,
            extra_headers=ExtraHeaders.parse(self.extra_headers),
        )

    def _transport_or_fail(self) -> Transport:
        assert self._transport is not None
        return self._transport

    async def _send(self, text: str) -> None:
        if self._closed.is_set():
            return
        try:
            await self._transport_or_fail().send(text)
        except TransportClosed:
            self._set_closed()

    def _set_closed(self) -> None:
        """The stream is closed: no more media goes out, so pending ``speak`` calls return."""
        self._closed.set()
        self._speech.clear()
        self._speech_done.set()
        self._poke()

    def _poke(self) -> None:
        self._heard_changed.set()
        self._heard_changed = trio.Event()
        self._queue_changed.set()
        self._queue_changed = trio.Event()

    async def _wait_heard_change(self) -> None:
        await self._heard_changed.wait()

    async def _read(self) -> None:
        transport = self._transport_or_fail()
        try:
            while True:
                text = await transport.receive()
                try:
                    command = parse_command(text)
                except ProtocolError as exc:
                    self.protocol_errors.append(str(exc))
                    log.warning("fake plivo: unreadable message from callflow: %s", exc)
                    continue
                self.received.append(Received(trio.current_time(), command, text))
                if isinstance(command, PlayAudio):
                    self._enqueue(command)
                elif isinstance(command, Checkpoint):
                    self._queue.append(command.name)
                elif isinstance(command, ClearAudio):
                    await self._clear()
                elif isinstance(command, SendDTMF):
                    self.sent_dtmf += command.digits
                self._poke()
        except TransportClosed as exc:
            self.close_code = exc.code
        finally:
            self._stop_playing()
            self._set_closed()

    def _enqueue(self, command: PlayAudio) -> None:
        if (
            command.content_type != self.format.encoding
            or command.sample_rate != self.format.sample_rate
        ):
            message = (
                f"playAudio in {command.content_type} at {command.sample_rate} Hz on a "
                f"{self.format.content_type} stream"
            )
            self.protocol_errors.append(message)
            log.warning("fake plivo: %s", message)
            return
        self._queue.append(base64.b64decode(command.payload))
        self.max_queued_s = max(self.max_queued_s, self.queued_s)

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
        self.cleared.append(Cleared(trio.current_time(), dropped))
        await self._send(
            encode_event(ClearedAudio(sequence_number=next(self._seq), stream_id=self.stream_id))
        )

    async def _play(self) -> None:
        """Plays the queue at real-time rate; acks each checkpoint as it is reached."""
        while not self._closed.is_set():
            if not self._queue:
                await self._queue_changed.wait()
                continue
            item = self._queue.popleft()
            if isinstance(item, str):
                await self._send(
                    encode_event(
                        PlayedStream(
                            sequence_number=next(self._seq), stream_id=self.stream_id, name=item
                        )
                    )
                )
                continue
            with trio.CancelScope() as scope:
                self._playing_scope = scope
                self._playing_item, self._playing_began = item, trio.current_time()
                await trio.sleep(self.format.duration_s(len(item)))
            if not scope.cancelled_caught:  # a cut chunk was accounted by _stop_playing
                self._playing_scope = None
                self._heard += item
            self._poke()

    async def _media(self) -> None:
        """An inbound media frame every 20 ms: the caller's speech, else silence."""
        fmt = self.format
        silence = encode_audio(Audio.silence(FRAME_S, fmt.sample_rate).samples, fmt)
        silence_b64 = base64.b64encode(silence).decode()
        headers = ExtraHeaders.parse(self.extra_headers)
        next_time = trio.current_time()
        while not self._closed.is_set():
            payload = silence_b64
            if self._speech:
                chunk = self._speech.popleft()
                if chunk == b"":
                    self._speech_done.set()
                else:
                    payload = base64.b64encode(chunk.ljust(len(silence), silence[:1])).decode()
            event = Media(
                sequence_number=next(self._seq),
                stream_id=self.stream_id,
                track="inbound",
                timestamp_ms=math.floor(trio.current_time() * 1000),
                chunk=next(self._chunk),
                payload=payload,
                extra_headers=headers,
            )
            await self._send(encode_event(event))
            next_time += FRAME_S
            await trio.sleep_until(next_time)
