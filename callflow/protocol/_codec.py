"""Text <-> values for both directions of a Plivo stream: parse, encode, and the fast paths.

Two paths read inbound text. :func:`parse` tries a hand-written one for ``media`` (about 50
a second per track per call, PROTOCOL.md §2, so it decides a server's capacity) that
accepts only the exact types Plivo sends; anything else it hands to the general path (the
cattrs converter in ``_convert``), which defines the behaviour, tolerance and errors. The
tests check that the two agree.
"""

from __future__ import annotations

import contextlib
from types import MappingProxyType
from typing import Any

import orjson

from callflow.protocol import _convert
from callflow.protocol._commands import OutboundCommand, PlayAudio
from callflow.protocol._errors import ProtocolError
from callflow.protocol._events import InboundEvent, Media, UnknownEvent
from callflow.protocol._format import Format
from callflow.protocol._headers import ExtraHeaders, _parse_cached

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_PAYLOAD_B64",
    "encode",
    "encode_event",
    "load_event",
    "parse",
    "parse_command",
    "parse_loaded",
    "play_audio_message",
    "play_audio_prefix",
]

MAX_MESSAGE_BYTES = 65536
"""Largest WebSocket message Plivo takes, in bytes (PROTOCOL.md §1; seed ``003_…`` Limits)."""

MAX_PAYLOAD_B64 = 16384
"""Most base64 characters Plivo recommends per ``playAudio`` payload (§1, §4; seed ``003_…``).

That is 12 288 bytes of raw audio: 1.536 s of μ-law 8 kHz, 0.768 s of L16 8 kHz, 0.384 s of
L16 16 kHz.
"""

_decode = orjson.loads
_EVENT_CLASSES = frozenset(shape.cls for shape in _convert.INBOUND.values())
_COMMAND_CLASSES = frozenset(shape.cls for shape in _convert.OUTBOUND.values())
_EMPTY_HEADERS = ExtraHeaders.EMPTY
_PLAY_AUDIO_SUFFIX = '"}}'


def _load(text: str | bytes) -> dict[str, Any]:
    """The JSON object in ``text``.

    Raises:
        ProtocolError: (no event, no field) when ``text`` is not JSON or not an object.
    """
    try:
        # orjson parses a media message about 3× faster than the stdlib's json (see
        # docs/performance.md); bytes are checked as UTF-8 by it (RFC 6455 §5.6: WebSocket
        # text is UTF-8). Its JSONDecodeError is a ValueError.
        obj = _decode(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"not JSON: {exc}", raw=_as_text(text)) from None
    if type(obj) is not dict:
        raise ProtocolError(f"expected a JSON object, got {_convert.show(obj)}", raw=_as_text(text))
    return obj


def _as_text(text: str | bytes) -> str:
    return text if isinstance(text, str) else text.decode("utf-8", "replace")


def _tag(obj: dict[str, Any], text: str | bytes) -> str:
    tag = obj.get("event")
    if type(tag) is not str:
        problem = "missing" if tag is None else f"expected a string, got {_convert.show(tag)}"
        raise ProtocolError(problem, field="event", raw=_as_text(text))
    return tag


def parse(text: str | bytes) -> InboundEvent:
    """The event in one WebSocket text message from Plivo (PROTOCOL.md §2).

    ``text`` is the frame's text (``bytes`` must be UTF-8, as WebSocket text is). The
    ``event`` tag picks the class: ``start`` :class:`Start`, ``media`` :class:`Media`,
    ``dtmf`` :class:`Dtmf`, ``playedStream`` or ``played`` :class:`PlayedStream`,
    ``clearedAudio`` :class:`ClearedAudio`, ``stop`` :class:`Stop`, any other string
    :class:`UnknownEvent`. Tolerance (§2): integer fields also take strings of digits
    (``"8000"``), ``sequenceNumber`` may be absent (``None``), unknown keys are ignored.

    Raises:
        ProtocolError: when ``text`` is not a JSON object, ``event`` is missing or not a
            string, or a known event lacks a required field or has one of the wrong type
            (``field`` is its dotted wire path, e.g. ``start.mediaFormat.sampleRate``), or a
            ``dtmf`` digit is not one of ``0-9 * # A-D``.
    """
    tag, obj = load_event(text)
    return parse_loaded(tag, obj, text)


def load_event(text: str | bytes) -> tuple[str, dict[str, Any]]:
    """``(event tag, JSON object)`` of one message from Plivo, without building the event.

    The first half of :func:`parse`, for a reader that can act on the tag alone: a ``media``
    frame nobody listens to (about 50 a second per call, PROTOCOL.md §2) needs only to be
    counted. :func:`parse_loaded` is the second half.

    Raises:
        ProtocolError: when ``text`` is not a JSON object, or ``event`` is missing or not a
            string (``field="event"``).
    """
    obj = _load(text)
    return _tag(obj, text), obj


def parse_loaded(tag: str, obj: dict[str, Any], text: str | bytes) -> InboundEvent:
    """The event, from what :func:`load_event` returned for ``text``: ``parse(text) ==
    parse_loaded(*load_event(text), text)``.

    Raises:
        ProtocolError: as :func:`parse` does for a known event with a missing or mistyped field.
    """
    if tag == "media":
        media = _media(obj)
        if media is not None:
            return media
    shape = _convert.INBOUND.get(tag)
    if shape is None:
        return _unknown(obj)
    event: InboundEvent = _convert.read(shape, obj, _as_text(text))
    return event


def _media(obj: dict[str, Any]) -> Media | None:
    """``obj`` as :class:`Media` when it has exactly Plivo's types, else ``None``.

    The lean path: no flattening, no converter. ``None`` sends the message down the general
    path, which accepts the tolerated variants and raises the precise errors.
    """
    try:
        body = obj["media"]
        stream_id = obj["streamId"]
        track = body["track"]
        timestamp = body["timestamp"]
        chunk = body["chunk"]
        payload = body["payload"]
    except (KeyError, TypeError):
        return None
    sequence_number = obj.get("sequenceNumber")
    headers = obj.get("extra_headers")
    if (
        type(stream_id) is str
        and type(track) is str
        and type(payload) is str
        and type(chunk) is int
        and type(timestamp) is str
        and timestamp.isdigit()
        and timestamp.isascii()
        and len(timestamp) < 19
        and (sequence_number is None or type(sequence_number) is int)
        and (headers is None or type(headers) is str)
    ):
        return Media(
            sequence_number=sequence_number,
            stream_id=stream_id,
            track=track,
            timestamp_ms=int(timestamp),
            chunk=chunk,
            payload=payload,
            extra_headers=_EMPTY_HEADERS if headers is None else _parse_cached(headers),
        )
    return None


def _unknown(obj: dict[str, Any]) -> UnknownEvent:
    sequence_number: int | None = None
    with contextlib.suppress(TypeError):  # an unknown event is never an error
        sequence_number = _convert.structure_int(obj.get("sequenceNumber"))
    return UnknownEvent(
        sequence_number=sequence_number, event=obj["event"], raw=MappingProxyType(obj)
    )


def parse_command(text: str | bytes) -> OutboundCommand:
    """The command in one message to Plivo (PROTOCOL.md §3): what a fake Plivo reads.

    ``playAudio`` :class:`PlayAudio` (``streamId`` optional), ``checkpoint``
    :class:`Checkpoint`, ``clearAudio`` :class:`ClearAudio`, ``sendDTMF`` :class:`SendDTMF`.
    Integer fields also take strings of digits; unknown keys are ignored.

    Raises:
        ProtocolError: when ``text`` is not a JSON object; ``field="event"`` when ``event``
            is missing, not a string, or not one of the four commands; otherwise with the
            dotted path of a missing or mistyped field, or ``field="dtmf"`` for bad digits.
    """
    obj = _load(text)
    tag = _tag(obj, text)
    shape = _convert.OUTBOUND.get(tag)
    if shape is None:
        known = ", ".join(_convert.OUTBOUND)
        raise ProtocolError(
            f"unknown command {tag!r}; Plivo takes {known}",
            event=tag,
            field="event",
            raw=_as_text(text),
        )
    command: OutboundCommand = _convert.read(shape, obj, _as_text(text))
    return command


def encode(command: OutboundCommand) -> str:
    """The compact JSON text of a command to Plivo (PROTOCOL.md §3).

    Shapes: see each command class. Output is ASCII (non-ASCII is ``\\u``-escaped), without
    spaces, ``event`` first. The size is not checked: keep payloads within
    :data:`MAX_PAYLOAD_B64`.

    Raises:
        TypeError: when ``command`` is not one of the four command classes.
    """
    if type(command) not in _COMMAND_CLASSES:
        raise TypeError(f"not a Plivo stream command: {command!r}")
    return _convert.dumps(_convert.write(command))


def encode_event(event: InboundEvent) -> str:
    """The compact JSON text Plivo would send for ``event`` (PROTOCOL.md §2; seed ``002_…``).

    Writes the seeds' shapes (see each event class): ``sequenceNumber`` first when set, then
    ``event``; integer timestamps become digit strings; ``None`` fields are left out;
    :class:`PlayedStream` is written as ``playedStream``. An :class:`UnknownEvent` is its
    ``raw`` object with ``event`` and ``sequenceNumber`` from its attributes. For every
    event, ``parse(encode_event(event)) == event``.

    Raises:
        TypeError: when ``event`` is not one of the inbound event classes.
    """
    if isinstance(event, UnknownEvent):
        out: dict[str, Any] = {}
        if event.sequence_number is not None:
            out["sequenceNumber"] = event.sequence_number
        out["event"] = event.event
        out |= {k: v for k, v in event.raw.items() if k not in ("sequenceNumber", "event")}
        return _convert.dumps(out)
    if type(event) not in _EVENT_CLASSES:
        raise TypeError(f"not a Plivo stream event: {event!r}")
    return _convert.dumps(_convert.write(event))


def play_audio_prefix(stream_id: str | None, fmt: Format) -> str:
    """The text of a ``playAudio`` message up to its payload, for :func:`play_audio_message`.

    Compute it once per stream and format; it is the text of ``encode(PlayAudio(stream_id,
    fmt.encoding, fmt.sample_rate, ""))`` without the closing ``"}}``, so what the two
    functions write is exactly what :func:`encode` writes.
    """
    text = encode(PlayAudio(stream_id, fmt.encoding, fmt.sample_rate, ""))
    if not text.endswith('""}}'):  # payload is the last key of the last object
        raise AssertionError(f"playAudio no longer ends with its payload: {text}")
    return text[: -len(_PLAY_AUDIO_SUFFIX)]


def play_audio_message(prefix: str, payload_b64: str) -> str:
    """One ``playAudio`` message: ``prefix`` from :func:`play_audio_prefix` and a payload.

    ``play_audio_message(play_audio_prefix(sid, fmt), p) == encode(PlayAudio(sid,
    fmt.encoding, fmt.sample_rate, p))`` for every standard base64 ``p`` (base64 needs no
    JSON escaping). Nothing is checked: this runs for every outbound chunk (§3).
    """
    return f"{prefix}{payload_b64}{_PLAY_AUDIO_SUFFIX}"
