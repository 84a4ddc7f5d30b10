"""encode(), encode_event(), parse_command() and the playAudio fast path (PROTOCOL.md §2-§3)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from callflow.protocol import (
    MAX_MESSAGE_BYTES,
    MAX_PAYLOAD_B64,
    Checkpoint,
    ClearAudio,
    ClearedAudio,
    Dtmf,
    ExtraHeaders,
    Format,
    InboundEvent,
    Media,
    OutboundCommand,
    PlayAudio,
    PlayedStream,
    ProtocolError,
    SendDTMF,
    Start,
    Stop,
    UnknownEvent,
    encode,
    encode_event,
    parse,
    parse_command,
    play_audio_message,
    play_audio_prefix,
)

SID = "20170ada-f610-433b-8758-c02a2aab3662"
CALL = "8c43a765-94fa-4ee9-b9a3-242703e41f63"
HEADERS = ExtraHeaders.parse("userId=12345;sessionId=abc-xyz")


def test_limits() -> None:
    assert MAX_MESSAGE_BYTES == 64 * 1024
    assert MAX_PAYLOAD_B64 == 16 * 1024


# --- encode ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "text"),
    [
        (
            PlayAudio(SID, "audio/x-mulaw", 8000, "AAAA"),
            '{"event":"playAudio","streamId":"' + SID + '","media":'
            '{"contentType":"audio/x-mulaw","sampleRate":8000,"payload":"AAAA"}}',
        ),
        (
            PlayAudio(None, "audio/x-l16", 16000, "AAAA"),
            '{"event":"playAudio","media":'
            '{"contentType":"audio/x-l16","sampleRate":16000,"payload":"AAAA"}}',
        ),
        (
            Checkpoint(SID, "customer greeting audio"),
            '{"event":"checkpoint","streamId":"' + SID + '","name":"customer greeting audio"}',
        ),
        (ClearAudio(SID), '{"event":"clearAudio","streamId":"' + SID + '"}'),
        (SendDTMF("123#"), '{"event":"sendDTMF","dtmf":"123#"}'),
    ],
)
def test_encode_exact_text(command: OutboundCommand, text: str) -> None:
    assert encode(command) == text


def test_encode_escapes_what_json_must() -> None:
    text = encode(Checkpoint(SID, 'say "hi"\n — ok'))
    assert json.loads(text)["name"] == 'say "hi"\n — ok'
    assert text.isascii()


def test_encode_refuses_an_event() -> None:
    with pytest.raises(TypeError):
        encode(ClearedAudio(stream_id=SID))  # type: ignore[arg-type]


@pytest.mark.parametrize(("digits", "upper"), [("0123456789*#ABCD", None), ("1a#d", "1A#D")])
def test_send_dtmf_digits(digits: str, upper: str | None) -> None:
    assert SendDTMF(digits).digits == (upper or digits)


@pytest.mark.parametrize("digits", ["", "12x", "1 2", "w1", "E"])
def test_send_dtmf_rejects_other_characters(digits: str) -> None:
    with pytest.raises(ProtocolError) as info:
        SendDTMF(digits)
    assert (info.value.event, info.value.field) == ("sendDTMF", "dtmf")
    assert repr(digits) in str(info.value)


# --- the playAudio fast path -----------------------------------------------------------


@pytest.mark.parametrize("stream_id", [SID, None, "", 'a"b\\c', "Zoë-☎"])
@pytest.mark.parametrize("fmt", list(Format))
@pytest.mark.parametrize(
    "payload",
    ["", "AAAA", base64.b64encode(bytes(range(256)) * 64).decode(), "A" * MAX_PAYLOAD_B64],
)
def test_play_audio_fast_path_writes_what_encode_writes(
    stream_id: str | None, fmt: Format, payload: str
) -> None:
    prefix = play_audio_prefix(stream_id, fmt)
    message = play_audio_message(prefix, payload)
    assert message == encode(PlayAudio(stream_id, fmt.encoding, fmt.sample_rate, payload))
    assert parse_command(message) == PlayAudio(stream_id, fmt.encoding, fmt.sample_rate, payload)


def test_a_full_payload_fits_in_a_message() -> None:
    message = play_audio_message(play_audio_prefix(SID, Format.L16_16K), "A" * MAX_PAYLOAD_B64)
    assert len(message.encode()) < MAX_MESSAGE_BYTES


# --- parse_command ---------------------------------------------------------------------


COMMANDS: list[OutboundCommand] = [
    PlayAudio(SID, "audio/x-mulaw", 8000, "AAAA"),
    PlayAudio(None, "audio/x-l16", 8000, ""),
    Checkpoint(SID, "n-1"),
    Checkpoint(SID, 'ünïcode "quoted"'),
    ClearAudio(SID),
    SendDTMF("1"),
    SendDTMF("*#0ABCD"),
]


@pytest.mark.parametrize("command", COMMANDS)
def test_commands_round_trip(command: OutboundCommand) -> None:
    assert parse_command(encode(command)) == command
    assert parse_command(encode(command).encode()) == command


def test_parse_command_takes_numeric_strings() -> None:
    text = json.dumps(
        {
            "event": "playAudio",
            "media": {"contentType": "audio/x-mulaw", "sampleRate": "8000", "payload": "AA=="},
        }
    )
    assert parse_command(text) == PlayAudio(None, "audio/x-mulaw", 8000, "AA==")


def command_error(obj: object) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_command(json.dumps(obj))
    return info.value


@pytest.mark.parametrize("tag", ["start", "media", "mark", "sendDtmf", "PLAYAUDIO"])
def test_parse_command_rejects_unknown_events(tag: str) -> None:
    error = command_error({"event": tag, "streamId": SID})
    assert (error.event, error.field) == (tag, "event")
    assert "playAudio" in error.message


@pytest.mark.parametrize(
    ("obj", "event", "field"),
    [
        ({"streamId": SID}, None, "event"),
        ({"event": 1}, None, "event"),
        ({"event": "checkpoint", "streamId": SID}, "checkpoint", "name"),
        ({"event": "clearAudio", "streamId": 5}, "clearAudio", "streamId"),
        ({"event": "playAudio", "media": {"contentType": "audio/x-mulaw", "sampleRate": 8000}},
         "playAudio", "media.payload"),
        ({"event": "playAudio", "media": "AAAA"}, "playAudio", "media"),
        ({"event": "sendDTMF", "dtmf": "x"}, "sendDTMF", "dtmf"),
        ({"event": "sendDTMF", "dtmf": 5}, "sendDTMF", "dtmf"),
        ({"event": "sendDTMF"}, "sendDTMF", "dtmf"),
    ],
)  # fmt: skip
def test_parse_command_errors(obj: object, event: str | None, field: str) -> None:
    error = command_error(obj)
    assert (error.event, error.field) == (event, field)


@pytest.mark.parametrize("text", ["nope", "[]", ""])
def test_parse_command_unreadable_text(text: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_command(text)
    assert (info.value.event, info.value.field, info.value.raw) == (None, None, text)


# --- encode_event ----------------------------------------------------------------------


EVENTS: list[InboundEvent] = [
    Start(
        sequence_number=0,
        call_id=CALL,
        stream_id=SID,
        account_id="155747",
        tracks=("inbound", "outbound"),
        encoding="audio/x-l16",
        sample_rate=8000,
        extra_headers=ExtraHeaders.EMPTY,
    ),
    Start(
        call_id=CALL,
        stream_id="Zoë",
        account_id="1",
        tracks=(),
        encoding="audio/x-mulaw",
        sample_rate=8000,
        extra_headers=HEADERS,
    ),
    Media(
        sequence_number=887,
        stream_id=SID,
        track="inbound",
        timestamp_ms=1687353805345,
        chunk=469,
        payload="CAAIAA==",
        extra_headers=HEADERS,
    ),
    Media(stream_id=SID, track="outbound", timestamp_ms=0, chunk=1, payload=""),
    Media(stream_id=SID, track="inbound", timestamp_ms=-20, chunk=-1, payload="AAAA"),
    Dtmf(
        sequence_number=3,
        stream_id=SID,
        digit="#",
        track="inbound",
        timestamp_ms=1687353805345,
        extra_headers=HEADERS,
    ),
    Dtmf(stream_id=SID, digit="a", track="inbound"),
    PlayedStream(sequence_number=5, stream_id=SID, name="customer greeting audio"),
    PlayedStream(stream_id=SID, name=""),
    ClearedAudio(sequence_number=0, stream_id=SID),
    Stop(sequence_number=9, call_id=CALL, stream_id=SID, reason="hangup"),
    Stop(stream_id=SID),
    Stop(),
    UnknownEvent(sequence_number=4, event="mark", raw={"event": "mark", "sequenceNumber": 4}),
    UnknownEvent(event="end", raw={"event": "end", "streamId": SID}),
    UnknownEvent(event="mark", raw={"event": "mark", "mark": {"name": "x"}}),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_events_round_trip(event: InboundEvent) -> None:
    text = encode_event(event)
    assert parse(text) == event
    assert parse(text.encode()) == event


@pytest.mark.parametrize(
    ("event", "wire"),
    [
        (
            Start(
                sequence_number=1,
                call_id=CALL,
                stream_id=SID,
                account_id="155747",
                tracks=("inbound",),
                encoding="audio/x-mulaw",
                sample_rate=8000,
                extra_headers=HEADERS,
            ),
            {
                "sequenceNumber": 1,
                "event": "start",
                "start": {
                    "callId": CALL,
                    "streamId": SID,
                    "accountId": "155747",
                    "tracks": ["inbound"],
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
                },
                "extra_headers": "userId=12345;sessionId=abc-xyz",
            },
        ),
        (
            Media(stream_id=SID, track="inbound", timestamp_ms=17, chunk=2, payload="AAAA"),
            {
                "event": "media",
                "streamId": SID,
                "media": {"track": "inbound", "timestamp": "17", "chunk": 2, "payload": "AAAA"},
                "extra_headers": "{}",
            },
        ),
        (
            Dtmf(sequence_number=2, stream_id=SID, digit="1", track="inbound", timestamp_ms=17),
            {
                "sequenceNumber": 2,
                "event": "dtmf",
                "streamId": SID,
                "dtmf": {"digit": "1", "track": "inbound", "timestamp": "17"},
                "extra_headers": "{}",
            },
        ),
        (
            Dtmf(stream_id=SID, digit="1", track="inbound"),
            {
                "event": "dtmf",
                "streamId": SID,
                "dtmf": {"digit": "1", "track": "inbound"},
                "extra_headers": "{}",
            },
        ),
        (
            PlayedStream(sequence_number=5, stream_id=SID, name="n"),
            {"sequenceNumber": 5, "event": "playedStream", "streamId": SID, "name": "n"},
        ),
        (
            ClearedAudio(sequence_number=0, stream_id=SID),
            {"sequenceNumber": 0, "event": "clearedAudio", "streamId": SID},
        ),
        (
            Stop(sequence_number=9, call_id=CALL, stream_id=SID, reason="hangup"),
            {
                "sequenceNumber": 9,
                "event": "stop",
                "stop": {"callId": CALL, "streamId": SID},
                "reason": "hangup",
            },
        ),
        (Stop(), {"event": "stop"}),
    ],
)
def test_encode_event_shapes(event: InboundEvent, wire: dict[str, Any]) -> None:
    text = encode_event(event)
    assert json.loads(text) == wire
    assert list(json.loads(text))[:2] == list(wire)[:2]  # sequenceNumber, then event
    assert ": " not in text  # compact separators
    assert ", " not in text


def test_encode_event_refuses_a_command() -> None:
    with pytest.raises(TypeError):
        encode_event(ClearAudio(SID))  # type: ignore[arg-type]
