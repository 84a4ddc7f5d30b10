"""Plivo's audio-stream wire protocol, sans-IO (PROTOCOL.md §2-§4). Imports no trio.

Values for every message in both directions, and the functions between them and text:

* from Plivo: :func:`parse` -> :data:`InboundEvent` (:class:`Start`, :class:`Media`,
  :class:`Dtmf`, :class:`PlayedStream`, :class:`ClearedAudio`, :class:`Stop`,
  :class:`UnknownEvent`), also in two halves, :func:`load_event` (the tag) then
  :func:`parse_loaded` (the event), for a reader that acts on some tags alone;
* to Plivo: :data:`OutboundCommand` (:class:`PlayAudio`, :class:`Checkpoint`,
  :class:`ClearAudio`, :class:`SendDTMF`) -> :func:`encode`, with
  :func:`play_audio_prefix` / :func:`play_audio_message` as the per-chunk fast path;
* the other direction, for a fake Plivo: :func:`encode_event` and :func:`parse_command`.

Exceptions: :class:`ProtocolError` (a :class:`ValueError`) for anything unreadable, with the
event tag, the dotted wire path of the bad field and the raw text. Passing a value of the
wrong class to an encoder is a :class:`TypeError`.
"""

from callflow.protocol._codec import (
    MAX_MESSAGE_BYTES,
    MAX_PAYLOAD_B64,
    encode,
    encode_event,
    load_event,
    parse,
    parse_command,
    parse_loaded,
    play_audio_message,
    play_audio_prefix,
)
from callflow.protocol._commands import Checkpoint, ClearAudio, OutboundCommand, PlayAudio, SendDTMF
from callflow.protocol._errors import ProtocolError
from callflow.protocol._events import (
    ClearedAudio,
    Dtmf,
    InboundEvent,
    Media,
    PlayedStream,
    Start,
    Stop,
    UnknownEvent,
)
from callflow.protocol._format import Format
from callflow.protocol._headers import ExtraHeaders

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_PAYLOAD_B64",
    "Checkpoint",
    "ClearAudio",
    "ClearedAudio",
    "Dtmf",
    "ExtraHeaders",
    "Format",
    "InboundEvent",
    "Media",
    "OutboundCommand",
    "PlayAudio",
    "PlayedStream",
    "ProtocolError",
    "SendDTMF",
    "Start",
    "Stop",
    "UnknownEvent",
    "encode",
    "encode_event",
    "load_event",
    "parse",
    "parse_command",
    "parse_loaded",
    "play_audio_message",
    "play_audio_prefix",
]
