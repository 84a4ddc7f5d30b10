"""``Call``: what a flow holds.

One :class:`Call` exists per answered call, made by :func:`~callflow.runtime.run_call` when
Plivo's ``start`` event arrives. Its methods turn into Plivo's wire messages (PROTOCOL.md §3);
events from Plivo (PROTOCOL.md §2) wake its waiters. All of it runs inside the call's nursery:
nothing outlives the call.

The call is built from parts (see ``_state.py``): playback (``_playback.py``), what Plivo
sends (``_inbound.py``), taking answers (``_asking.py``: gather, ask, menu, record,
wait_speech) and, here, the rest of the DSL; the socket it is on is a
:class:`~callflow.runtime._attach.Line` (``_attach.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

import attrs
import trio

from callflow.observe import FlowMetrics
from callflow.protocol import ExtraHeaders, SendDTMF, encode, play_audio_prefix
from callflow.runtime import _background
from callflow.runtime._ackbound import AckBound
from callflow.runtime._asking import Asking
from callflow.runtime._attach import Line
from callflow.runtime._checkpoints import Checkpoints
from callflow.runtime._config import (
    MIN_LEAD_S,
    CallInfo,
    Playback,
    RuntimeConfig,
    StatusEvent,
)
from callflow.runtime._errors import CallflowError
from callflow.runtime._inbound import Inbound
from callflow.runtime._listen import InboundAudio
from callflow.runtime._playback import Player
from callflow.runtime._rest import PlivoRest, RestError
from callflow.runtime._sources import AudioSource
from callflow.runtime._state import CallState
from callflow.runtime._transport import Transport
from callflow.voice import Stt, TtsChoice

__all__ = [
    "MIN_LEAD_S",
    "AudioSource",
    "Call",
    "CallInfo",
    "InboundAudio",
    "Playback",
    "RuntimeConfig",
    "StatusEvent",
]

log = logging.getLogger("callflow.call")

T = TypeVar("T")


class Call(Asking):
    """One live call, as a flow sees it. Made by the runtime; flows never construct it.

    Every method that talks to Plivo raises :class:`CallEnded` once the call is over. Keys
    pressed at any time are kept in order (type-ahead) until a flow takes them, except keys
    pressed during a prompt no key can stop when ``uninterruptible_keys`` is ``"discard"``,
    and the finish key right after a full ``gather`` entry; a pending key interrupts the
    next barge-in prompt at once. Methods are safe to call from several tasks of the flow:
    one writer keeps wire order equal to call order.
    """

    _SLOTS = (
        "_line",
        "_rest",
        "_rest_done",
        "_transferred",
        "__weakref__",
    )
    # every attribute of every part, and no instance dict: a parked call is smaller by
    # its dict, ~1.7 KB (docs/performance.md, "Memory per idle call")
    __slots__ = (
        *CallState._SLOTS,
        *AckBound._SLOTS,
        *Checkpoints._SLOTS,
        *Player._SLOTS,
        *Inbound._SLOTS,
        *Asking._SLOTS,
        *_SLOTS,
    )

    def __init__(
        self,
        info: CallInfo,
        transport: Transport,
        config: RuntimeConfig | None = None,
        rest: PlivoRest | None = None,
        metrics: FlowMetrics | None = None,
        *,
        tts: TtsChoice | None = None,
        stt: Stt | None = None,
    ) -> None:
        super().__init__(info, config)
        if metrics is not None:
            self._metrics = metrics
        self._tts = tts
        self._stt = stt
        self._line = Line(self, transport, self._config)
        self._rest = rest
        self._rest_done = False
        self._transferred = False

    # -- the writer, for the parts (``_state.CallState``) --------------------------------------

    def _write(self, message: str) -> Awaitable[None]:
        return self._line.write(message)

    def _write_now(self, message: str) -> bool | None:
        return self._line.write_now(message)

    def _flush_writes(self) -> Awaitable[None]:
        return self._line.flush()

    def _rebind(self, stream_id: str) -> None:
        """The call moved to a new stream (a reconnect): its messages name ``stream_id``."""
        if stream_id != self.info.stream_id:
            self.info = attrs.evolve(self.info, stream_id=stream_id)
            self._prefix = play_audio_prefix(stream_id, self._format)

    # -- the DSL --------------------------------------------------------------------------

    @property
    def headers(self) -> ExtraHeaders:
        """The stream's parsed ``extra_headers`` (PROTOCOL.md §2)."""
        return self.info.extra_headers

    @property
    def answer_params(self) -> Mapping[str, str]:
        """The answer webhook's form params (PROTOCOL.md §1)."""
        return self.info.answer_params

    async def send_dtmf(self, digits: str) -> None:
        """Play DTMF ``digits`` (``0-9 * # A-D``) into the call (``sendDTMF``, PROTOCOL.md §3).

        Raises:
            callflow.protocol.ProtocolError: a character that is not a DTMF digit.
            CallEnded: the call is over.
        """
        await self._write(encode(SendDTMF(digits=digits)))

    def playing(
        self, source: AudioSource, *, loop: bool = False
    ) -> AbstractAsyncContextManager[None]:
        """Background audio for the length of a block: hold music during a lookup.

        ``async with call.playing(music, loop=True): await lookup()`` plays ``source``
        (again and again with ``loop``) while the block runs, fed to Plivo as ``play`` does
        (never more than ``RuntimeConfig.max_lead_s`` ahead). When the block exits, by
        return, exception or cancellation, the feeding stops and what is still queued at
        Plivo is cleared (``clearAudio``, then ``clearedAudio``; shielded, bounded by
        ``clear_timeout_s``), so none of it plays on unseen. Plivo's ``clearAudio`` drops
        the whole queue, so audio queued before the block is dropped with it. A ``say``
        inside the block queues after the music already sent (at most ``max_lead_s``).

        An exception from the block leaves it as it is (a hangup is a plain
        :class:`CallEnded`, not an exception group).

        Raises:
            ValueError: ``loop=True`` with a stream (an async iterable cannot play again).
            callflow.audio.AudioError: a WAV file that cannot be read (at ``async with``).
            CallEnded: the call is over (at ``async with``).
        """
        return _background.playing(self, source, loop=loop)

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
            await self._line.aclose(1000, "call ended by flow")

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
            await self._line.aclose(1000, "call transferred")

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
