"""Events Plivo sends on the stream WebSocket (PROTOCOL.md §2), as frozen values.

Each class names its wire shape; :func:`callflow.protocol.parse` builds them from text and
:func:`callflow.protocol.encode_event` writes them back, so a test double of Plivo speaks
with the same code. Times are Unix epoch **milliseconds**, sample rates Hz.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import Any, TypeAlias

import attrs

from callflow.protocol._errors import ProtocolError
from callflow.protocol._format import Format
from callflow.protocol._headers import ExtraHeaders

__all__ = [
    "DTMF_DIGITS",
    "ClearedAudio",
    "Dtmf",
    "InboundEvent",
    "Media",
    "PlayedStream",
    "Start",
    "Stop",
    "UnknownEvent",
    "dtmf_digit",
]

DTMF_DIGITS = frozenset("0123456789*#ABCD")
"""The sixteen DTMF keys (PROTOCOL.md §2 ``dtmf.digit``)."""


def dtmf_digit(value: str) -> str:
    """``value`` as an upper-case DTMF key; lower-case ``a``-``d`` are accepted."""
    digit = value.upper() if isinstance(value, str) else ""
    if len(digit) != 1 or digit not in DTMF_DIGITS:
        raise ProtocolError(
            f"DTMF digit must be one of 0-9 * # A-D, got {value!r}",  # str() withholds it
            event="dtmf",
            field="dtmf.digit",
        )
    return digit


@attrs.frozen(kw_only=True)
class Start:
    """The first event on a stream: who the call is and what audio format it carries.

    Wire shape (seed ``002_…``; PROTOCOL.md §2)::

        {"sequenceNumber": 0, "event": "start",
         "start": {"callId": "…", "streamId": "…", "accountId": "155747",
                   "tracks": ["inbound", "outbound"],
                   "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": 8000}},
         "extra_headers": "{}"}

    ``streamId`` is read from ``start`` or, failing that, from the top level (§2).

    Attributes:
        sequence_number: ``sequenceNumber``, or ``None`` when absent (§2: do not assume it
            starts at 0 or 1).
        call_id: ``start.callId``, Plivo's CallUUID: 1-128 printable characters (it starts
            every log line of the call), else the start is a :class:`ProtocolError`.
        stream_id: ``start.streamId``, read under the same rule.
        account_id: ``start.accountId``.
        tracks: ``start.tracks``: ``"inbound"`` and/or ``"outbound"``.
        encoding: ``start.mediaFormat.encoding``: ``audio/x-mulaw`` or ``audio/x-l16``.
        sample_rate: ``start.mediaFormat.sampleRate`` in Hz (8000 or 16000).
        extra_headers: the top-level ``extra_headers`` string, parsed.
    """

    sequence_number: int | None = None
    call_id: str
    stream_id: str
    account_id: str
    tracks: tuple[str, ...]
    encoding: str
    sample_rate: int
    extra_headers: ExtraHeaders = ExtraHeaders.EMPTY

    @property
    def format(self) -> Format:
        """The stream's :class:`Format`, from ``encoding`` and ``sample_rate`` (§4).

        A ``;rate=…`` suffix on ``encoding`` is ignored (§2 says Plivo sends none).

        Raises:
            ProtocolError: (``event="start"``, ``field="start.mediaFormat"``) when the pair is
                not one of Plivo's three formats.
        """
        encoding = self.encoding.partition(";")[0].strip()
        try:
            return Format.from_wire(encoding, self.sample_rate)
        except ValueError as exc:
            raise ProtocolError(str(exc), event="start", field="start.mediaFormat") from None


@attrs.frozen(kw_only=True)
class Media:
    """About 20 ms of one track's audio, ~50 per second per track (PROTOCOL.md §2).

    Wire shape (seed ``002_…``)::

        {"sequenceNumber": 887, "streamId": "…", "event": "media",
         "media": {"track": "inbound", "timestamp": "1687353805345", "chunk": 469,
                   "payload": "CAAIAAgA…"},
         "extra_headers": "{}"}

    The payload stays a base64 ``str``: decoding costs time per frame, and most frames are
    only counted or forwarded. Call :meth:`audio_bytes` when the audio is needed.

    Attributes:
        sequence_number: ``sequenceNumber``, or ``None`` when absent.
        stream_id: top-level ``streamId``.
        track: ``media.track``: ``"inbound"`` (the caller) or ``"outbound"``.
        timestamp_ms: ``media.timestamp``, Unix epoch milliseconds (a string on the wire).
        chunk: ``media.chunk``, a counter per track.
        payload: ``media.payload``, base64 of raw audio in the stream's format (§4).
        extra_headers: the top-level ``extra_headers`` string, parsed.
    """

    sequence_number: int | None = None
    stream_id: str
    track: str
    timestamp_ms: int
    chunk: int
    payload: str
    extra_headers: ExtraHeaders = ExtraHeaders.EMPTY

    def audio_bytes(self) -> bytes:
        """The raw audio: ``payload`` base64-decoded (strictly: no whitespace, right padding).

        Raises:
            ProtocolError: (``event="media"``, ``field="media.payload"``) when ``payload`` is
                not valid base64.
        """
        try:
            return binascii.a2b_base64(self.payload, strict_mode=True)
        except ValueError as exc:
            raise ProtocolError(
                f"payload is not valid base64 ({exc})", event="media", field="media.payload"
            ) from None


@attrs.frozen(kw_only=True)
class Dtmf:
    """The caller pressed a key (PROTOCOL.md §2).

    Wire shape (PROTOCOL.md §2 and Plivo's stream SDKs; no seed shows one)::

        {"sequenceNumber": 12, "event": "dtmf", "streamId": "…",
         "dtmf": {"digit": "5", "track": "inbound", "timestamp": "1687353805345"},
         "extra_headers": "{}"}

    Attributes:
        sequence_number: ``sequenceNumber``, or ``None`` when absent.
        stream_id: top-level ``streamId``.
        digit: ``dtmf.digit``: one of ``0-9 * # A-D``; ``a``-``d`` are upper-cased.
        track: ``dtmf.track``, normally ``"inbound"``.
        timestamp_ms: ``dtmf.timestamp``, Unix epoch milliseconds, or ``None`` when absent
            (Plivo's Java SDK has no timestamp).
        extra_headers: the top-level ``extra_headers`` string, parsed.

    Raises:
        ProtocolError: (``event="dtmf"``, ``field="dtmf.digit"``) on construction with any
            other digit.
    """

    sequence_number: int | None = None
    stream_id: str
    digit: str = attrs.field(converter=dtmf_digit)
    track: str
    timestamp_ms: int | None = None
    extra_headers: ExtraHeaders = ExtraHeaders.EMPTY


@attrs.frozen(kw_only=True)
class PlayedStream:
    """Everything queued before checkpoint ``name`` has played to the caller (PROTOCOL.md §2).

    The answer to a :class:`Checkpoint`; never sent for a checkpoint whose audio was cleared.
    Wire shape: ``{"sequenceNumber": 3, "event": "playedStream", "streamId": "…", "name":
    "…"}``; one FAQ (seed ``002_…``) calls the event ``played``: both parse to this class.

    Attributes:
        sequence_number: ``sequenceNumber``, or ``None`` when absent (seed ``002_…`` has none).
        stream_id: ``streamId``.
        name: ``name``, the checkpoint's name.
    """

    sequence_number: int | None = None
    stream_id: str
    name: str


@attrs.frozen(kw_only=True)
class ClearedAudio:
    """Plivo dropped all queued audio, acknowledging :class:`ClearAudio` (PROTOCOL.md §2).

    Wire shape (seed ``002_…``): ``{"sequenceNumber": 0, "event": "clearedAudio",
    "streamId": "…"}``.

    Attributes:
        sequence_number: ``sequenceNumber``, or ``None`` when absent.
        stream_id: ``streamId``.
    """

    sequence_number: int | None = None
    stream_id: str


@attrs.frozen(kw_only=True)
class Stop:
    """The stream is ending (PROTOCOL.md §2: not in current docs, shape varies).

    The socket closing is the real end of a stream; this event, when it comes, is advice.
    Accepted shapes: ``{"event": "stop", "stop": {"callId": "…", "streamId": "…"}}`` and
    ``{"event": "stop", "streamId": "…", "reason": "…"}`` (Plivo's Java SDK), or a mix:
    each field is looked up in ``stop`` first, then at the top level (``reason`` the other
    way round). Written back as ``{"sequenceNumber": …, "event": "stop", "stop": {"callId":
    …, "streamId": …}, "reason": …}`` with ``None`` fields left out.

    Attributes:
        sequence_number: ``sequenceNumber``, or ``None`` when absent.
        call_id: ``stop.callId`` or ``callId``, else ``None``.
        stream_id: ``stop.streamId`` or ``streamId``, else ``None``.
        reason: ``reason`` or ``stop.reason``, else ``None``.
    """

    sequence_number: int | None = None
    call_id: str | None = None
    stream_id: str | None = None
    reason: str | None = None


@attrs.frozen(kw_only=True)
class UnknownEvent:
    """An event this version of callflow does not know (PROTOCOL.md §2: it must not break a call).

    Attributes:
        sequence_number: ``sequenceNumber`` when it reads as an integer, else ``None`` (an
            unknown event is never an error, not even for a bad sequence number).
        event: the ``event`` tag.
        raw: the whole decoded JSON object, ``event`` and ``sequenceNumber`` included
            (read-only); :func:`encode_event` writes it back with ``event`` and
            ``sequenceNumber`` taken from the two attributes above. Not part of the hash.
    """

    sequence_number: int | None = None
    event: str
    raw: Mapping[str, Any] = attrs.field(hash=False)


InboundEvent: TypeAlias = Start | Media | Dtmf | PlayedStream | ClearedAudio | Stop | UnknownEvent
"""Everything :func:`callflow.protocol.parse` returns."""
