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
from callflow.audio import Audio
from callflow.audio import encode as encode_audio
from callflow.protocol import (
    Checkpoint,
    ClearAudio,
    Dtmf,
    ExtraHeaders,
    Format,
    Media,
    PlayAudio,
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
from callflow.testing._hearing import Cleared, Hearing
from callflow.voice import Text, default_tts

__all__ = ["Cleared", "FakePlivo", "Received"]

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


class FakePlivo(Hearing):
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

    ``prompts`` (names to :class:`Audio`, such as a flow's ``Audio.folder``) lets a failed
    :meth:`hears` name the prompt the caller heard instead.
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
        prompts: Mapping[str, Audio] | None = None,
    ) -> None:
        if flow is None and (transport is None or format is None):
            raise TypeError("FakePlivo needs a flow, or a transport and a format")
        super().__init__(format or flow.format, prompts)  # type: ignore[union-attr]
        self.flow = flow
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
        self._speech_done = trio.Event()
        self._speech: collections.deque[bytes] = collections.deque()
        self._nursery: trio.Nursery | None = None
        self._server_done = trio.Event()
        self._connection_scope: trio.CancelScope | None = None
        self._dropped = False
        self.connections = 0
        """WebSocket connections opened for this call so far (:meth:`reconnect` adds one)."""
        self.received: list[Received] = []
        """Every message callflow sent, in order."""
        self.sent_dtmf = ""
        """Digits callflow played into the call with ``sendDTMF``."""
        self.protocol_errors: list[str] = []
        """Messages from callflow the fake could not read (each also logged)."""
        self.close_code: int | None = None
        """The close code when callflow closed the stream."""

    # -- what the caller did and heard -----------------------------------------------------

    @property
    def hung_up_flag(self) -> bool:
        """Whether the stream is closed (by either side)."""
        return self._closed.is_set()

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

    async def press(self, digits: str, *, gap: float = 0.1) -> list[float]:
        """Press keys: one ``dtmf`` event per digit, ``gap`` seconds apart (PROTOCOL.md §2).

        Returns once the last key went out, with the time each one went out
        (``trio.current_time()``, one per digit); a key pressed after the call ended goes
        nowhere and has no time.

        Raises:
            callflow.protocol.ProtocolError: a character that is not a DTMF digit.
        """
        sent: list[float] = []
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
            if await self._send(encode_event(event)):
                sent.append(trio.current_time())
        return sent

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

    async def says(self, words: str, *, voice: str | None = None) -> Audio:
        """The caller says ``words``: synthesised by the flow's own offline engine (its
        ``tts=``, else ``"auto"``), then sent as :meth:`speak` does. Synthesis blocks (takes no
        virtual time), so on the autojump clock no timeout runs out while it works. Returns
        the audio spoken.

        Raises:
            callflow.voice.TtsUnavailable: no engine is installed.
            RuntimeError: as :meth:`speak`.
        """
        choice = (self.flow.tts if self.flow is not None else None) or default_tts()
        audio = choice.renderer().render(Text(words, voice=voice), self.format)
        await self.speak(audio)
        return audio

    async def send_raw(self, text: str) -> None:
        """Send any text frame as if Plivo sent it (garbage, unknown events, odd shapes)."""
        await self._send(text)

    async def hang_up(self) -> None:
        """The caller hangs up: Plivo closes the WebSocket."""
        if not self._closed.is_set():
            await self._transport_or_fail().aclose(1000, "caller hung up")
            self._set_closed()

    async def drop(self) -> None:
        """The network drops the stream's socket (no close handshake; callflow sees code
        1006). What Plivo held queued is lost (callflow must assume so: docs/reconnect.md):
        the caller has heard the audio up to now, the rest of the queue and its checkpoints
        are gone. Keys pressed until :meth:`reconnect` are lost with the link."""
        if self._closed.is_set() or self._dropped:
            return
        self._dropped = True
        self._stop_playing()
        self._queue.clear()
        if self._connection_scope is not None:
            self._connection_scope.cancel()
        await self._transport_or_fail().aclose(1006, "connection lost")
        self._poke()

    async def reconnect(self) -> None:
        """Plivo retries the dropped stream: a new connection to the same stream URL, a new
        ``start`` for the same call (with a new ``streamId``), and media again. In memory
        only (the fake runs the runtime's side of the new connection too).

        Raises:
            RuntimeError: not dropped, or the fake has no flow (a real socket).
        """
        if not self._dropped or self.flow is None or self._nursery is None:
            raise RuntimeError("reconnect() needs an in-memory FakePlivo after drop()")
        plivo_side, server_side = memory_transport_pair()
        self._transport = plivo_side
        self._dropped = False
        self.stream_id = str(uuid.uuid4())
        self._nursery.start_soon(self._serve, server_side)
        await self._send(encode_event(self._start_event()))
        self._nursery.start_soon(self._connection)

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

            async def serve() -> None:
                try:
                    await self._serve(server_side)
                finally:
                    self._server_done.set()

            self._nursery.start_soon(serve)
        else:
            self._server_done.set()
        await self._send(encode_event(self._start_event()))
        self._nursery.start_soon(self._connection)
        return self

    async def _serve(self, server_side: Transport) -> None:
        """callflow's side of one connection (a reconnect re-attaches to the live call)."""
        assert self.flow is not None
        await run_call(
            self.flow,
            server_side,
            answer_params=self.answer_params,
            live_calls=self.live_calls,
            config=self.config,
            rest=self.rest,
            call_uuid=self.call_id,
        )

    async def _connection(self) -> None:
        """Plivo's side of one connection: read, play, send media, until it closes or
        :meth:`drop` cuts it."""
        self.connections += 1
        with trio.CancelScope() as scope:
            self._connection_scope = scope
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read)
                nursery.start_soon(self._play)
                if self.send_media:
                    nursery.start_soon(self._media)

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

    async def _send(self, text: str) -> bool:
        """Send one message to callflow; whether it went out (not on a dropped link)."""
        if self._closed.is_set() or self._dropped:
            return False
        try:
            await self._transport_or_fail().send(text)
        except TransportClosed:
            self._set_closed()
            return False
        return True

    def _set_closed(self) -> None:
        """The stream is closed: no more media goes out, so pending ``speak`` calls return."""
        self._closed.set()
        self._speech.clear()
        self._speech_done.set()
        self._poke()

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
                    refused = self._enqueue_audio(command)
                    if refused is not None:
                        self.protocol_errors.append(refused)
                        log.warning("fake plivo: %s", refused)
                elif isinstance(command, Checkpoint):
                    self._queue.append(command.name)
                elif isinstance(command, ClearAudio):
                    await self._clear()
                elif isinstance(command, SendDTMF):
                    self.sent_dtmf += command.digits
                self._poke()
        except TransportClosed as exc:
            if transport is self._transport and not self._dropped:
                self.close_code = exc.code
        finally:
            if transport is self._transport and not self._dropped:  # not a dropped link's
                self._stop_playing()
                self._set_closed()

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
