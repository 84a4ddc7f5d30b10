"""Commands callflow sends to Plivo on a bidirectional stream (PROTOCOL.md §3)."""

from __future__ import annotations

from typing import TypeAlias

import attrs

from callflow.protocol._errors import ProtocolError
from callflow.protocol._events import DTMF_DIGITS

__all__ = ["Checkpoint", "ClearAudio", "OutboundCommand", "PlayAudio", "SendDTMF", "dtmf_digits"]


def dtmf_digits(value: str) -> str:
    """``value`` as upper-case DTMF keys; lower-case ``a``-``d`` are accepted."""
    digits = value.upper() if isinstance(value, str) else ""
    if not digits or not DTMF_DIGITS.issuperset(digits):
        raise ProtocolError(
            f"DTMF digits must be one or more of 0-9 * # A-D, got {value!r}",
            event="sendDTMF",
            field="dtmf",
        )
    return digits


@attrs.frozen
class PlayAudio:
    """Queue audio for the caller (PROTOCOL.md §3; seed ``002_…``).

    Wire shape, with ``streamId`` left out when ``stream_id`` is ``None``::

        {"event": "playAudio", "streamId": "…",
         "media": {"contentType": "audio/x-mulaw", "sampleRate": 8000, "payload": "…"}}

    Plivo plays queued audio in order; its queue holds about 60 s (§3). For many chunks of
    one stream, :func:`play_audio_prefix` and :func:`play_audio_message` write the same text
    faster. Nothing here checks the payload: it must be standard base64 of raw audio in
    the stream's own format (no WAV header, §3), at most :data:`MAX_PAYLOAD_B64`
    characters (§1).

    Attributes:
        stream_id: ``streamId``; ``None`` leaves it out (Plivo does not require it).
        content_type: ``media.contentType``: ``audio/x-mulaw`` or ``audio/x-l16``, without
            ``;rate=`` and equal to the stream's ``start.mediaFormat.encoding``.
        sample_rate: ``media.sampleRate`` in Hz: 8000 or 16000, the stream's rate.
        payload: ``media.payload``, base64 text.
    """

    stream_id: str | None
    content_type: str
    sample_rate: int
    payload: str


@attrs.frozen
class Checkpoint:
    """Ask Plivo to say when everything queued so far has played (PROTOCOL.md §3).

    Wire shape (seed ``002_…``): ``{"event": "checkpoint", "streamId": "…", "name": "…"}``.
    Plivo answers with :class:`PlayedStream` carrying the same ``name``, unless the audio is
    cleared first. Names must be unique within a stream.

    Attributes:
        stream_id: ``streamId``.
        name: ``name``.
    """

    stream_id: str
    name: str


@attrs.frozen
class ClearAudio:
    """Drop all audio queued at Plivo (PROTOCOL.md §3; seed ``002_…``).

    Wire shape: ``{"event": "clearAudio", "streamId": "…"}``; Plivo answers with
    :class:`ClearedAudio`.

    Attributes:
        stream_id: ``streamId``.
    """

    stream_id: str


@attrs.frozen
class SendDTMF:
    """Play DTMF tones into the call (PROTOCOL.md §3).

    Wire shape: ``{"event": "sendDTMF", "dtmf": "123#"}``.

    Attributes:
        digits: ``dtmf``: one or more of ``0-9 * # A-D``; ``a``-``d`` are upper-cased.

    Raises:
        ProtocolError: (``event="sendDTMF"``, ``field="dtmf"``) on construction with an
            empty string or any other character.
    """

    digits: str = attrs.field(converter=dtmf_digits)


OutboundCommand: TypeAlias = PlayAudio | Checkpoint | ClearAudio | SendDTMF
"""Everything :func:`callflow.protocol.encode` writes."""
