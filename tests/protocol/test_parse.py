"""parse(): Plivo's variants are read (PROTOCOL.md §2), the unreadable is one ProtocolError."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from callflow.protocol import (
    ClearedAudio,
    Dtmf,
    ExtraHeaders,
    Format,
    Media,
    PlayedStream,
    ProtocolError,
    Start,
    Stop,
    UnknownEvent,
    _convert,
    load_event,
    parse,
    parse_loaded,
)

SID = "20170ada-f610-433b-8758-c02a2aab3662"
CALL = "8c43a765-94fa-4ee9-b9a3-242703e41f63"


def start_msg(**changes: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "sequenceNumber": 0,
        "event": "start",
        "start": {
            "callId": CALL,
            "streamId": SID,
            "accountId": "155747",
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
        },
        "extra_headers": "{}",
    }
    return msg | changes


def media_msg(**media: Any) -> dict[str, Any]:
    body = {"track": "inbound", "timestamp": "1687353805345", "chunk": 469, "payload": "AAAA"}
    return {
        "sequenceNumber": 887,
        "streamId": SID,
        "event": "media",
        "media": body | media,
        "extra_headers": "{}",
    }


def dtmf_msg(**dtmf: Any) -> dict[str, Any]:
    body = {"digit": "5", "track": "inbound", "timestamp": "1687353805345"}
    return {
        "sequenceNumber": 12,
        "event": "dtmf",
        "streamId": SID,
        "dtmf": body | dtmf,
        "extra_headers": "{}",
    }


def parse_obj(obj: object) -> Any:
    return parse(json.dumps(obj))


def error_of(obj: object) -> ProtocolError:
    text = obj if isinstance(obj, str | bytes) else json.dumps(obj)
    with pytest.raises(ProtocolError) as info:
        parse(text)
    return info.value


# --- tolerance -------------------------------------------------------------------------


def test_numbers_may_be_numeric_strings() -> None:
    msg = start_msg(sequenceNumber="7")
    msg["start"]["mediaFormat"]["sampleRate"] = "16000"
    msg["start"]["mediaFormat"]["encoding"] = "audio/x-l16"
    event = parse_obj(msg)
    assert event.sequence_number == 7
    assert event.sample_rate == 16000
    assert event.format is Format.L16_16K

    media = parse_obj(media_msg(chunk="469", timestamp=1687353805345) | {"sequenceNumber": "887"})
    assert (media.sequence_number, media.chunk, media.timestamp_ms) == (887, 469, 1687353805345)

    assert parse_obj(dtmf_msg(timestamp=1687353805345)).timestamp_ms == 1687353805345


def test_negative_numeric_string_is_an_integer() -> None:
    # A clock before the epoch is odd, not unreadable; the fake's virtual clock can be small.
    assert parse_obj(media_msg(timestamp="-20")).timestamp_ms == -20


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (True, "true"),
        (8000.0, "8000.0"),
        ("8k", '"8k"'),
        ("", '""'),
        (" 8000", '" 8000"'),
        ("8_000", '"8_000"'),
        ("٨٠٠٠", '"٨٠٠٠"'),  # Arabic-Indic digits: int() takes them, Plivo never sends them
        (None, "null"),
        ([8000], "[8000]"),
    ],
)
def test_numbers_reject_bools_floats_and_other_text(value: object, shown: str) -> None:
    msg = start_msg()
    msg["start"]["mediaFormat"]["sampleRate"] = value
    error = error_of(msg)
    assert error.event == "start"
    assert error.field == "start.mediaFormat.sampleRate"
    assert error.message == f"expected an integer or a string of digits, got {shown}"


def test_a_huge_digit_string_is_an_error_not_a_crash() -> None:
    error = error_of(media_msg(chunk="9" * 5000))
    assert error.field == "media.chunk"


@pytest.mark.parametrize(
    "msg",
    [
        start_msg(),
        media_msg(),
        dtmf_msg(),
        {"event": "playedStream", "streamId": SID, "name": "n"},
        {"event": "clearedAudio", "streamId": SID},
        {"event": "stop"},
    ],
    ids=lambda m: m["event"],
)
def test_sequence_number_may_be_missing_or_null(msg: dict[str, Any]) -> None:
    msg = dict(msg)
    msg.pop("sequenceNumber", None)
    assert parse_obj(msg).sequence_number is None
    assert parse_obj(msg | {"sequenceNumber": None}).sequence_number is None


def test_unknown_keys_are_ignored() -> None:
    msg = start_msg(future={"x": 1}, other=[1, 2])
    msg["start"]["newThing"] = True
    msg["start"]["mediaFormat"]["channels"] = 1
    assert parse_obj(msg) == parse_obj(start_msg())
    media = media_msg(extra="x") | {"media2": None}
    assert parse_obj(media) == parse_obj(media_msg())


def test_start_stream_id_may_be_top_level() -> None:
    msg = start_msg(streamId="top")
    del msg["start"]["streamId"]
    assert parse_obj(msg).stream_id == "top"
    both = start_msg(streamId="top")
    assert parse_obj(both).stream_id == SID  # inside ``start`` wins (the seed's place)


def test_start_without_extra_headers_has_empty_headers() -> None:
    msg = start_msg()
    del msg["extra_headers"]
    assert parse_obj(msg).extra_headers is ExtraHeaders.EMPTY


def test_extra_headers_on_media_and_dtmf() -> None:
    headers = {"extra_headers": "userId=12345;sessionId=abc-xyz"}
    media = parse_obj(media_msg() | headers)
    dtmf = parse_obj(dtmf_msg() | headers)
    assert media.extra_headers == dtmf.extra_headers == {"userId": "12345", "sessionId": "abc-xyz"}
    assert media.extra_headers.raw == "userId=12345;sessionId=abc-xyz"


def test_extra_headers_as_an_object_is_tolerated() -> None:
    media = parse_obj(media_msg() | {"extra_headers": {"a": "b"}})
    assert media.extra_headers == {"a": "b"}


def test_played_is_an_alias_of_played_stream() -> None:
    played = parse_obj({"sequenceNumber": 4, "event": "played", "streamId": SID, "name": "n"})
    stream = parse_obj({"sequenceNumber": 4, "event": "playedStream", "streamId": SID, "name": "n"})
    assert played == stream == PlayedStream(sequence_number=4, stream_id=SID, name="n")


def test_cleared_audio() -> None:
    assert parse_obj({"event": "clearedAudio", "streamId": SID}) == ClearedAudio(stream_id=SID)


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        (
            {"event": "stop", "stop": {"callId": CALL, "streamId": SID}},
            Stop(call_id=CALL, stream_id=SID),
        ),
        (
            {"sequenceNumber": 9, "event": "stop", "streamId": SID, "reason": "hangup"},
            Stop(sequence_number=9, stream_id=SID, reason="hangup"),
        ),
        (
            {"event": "stop", "callId": CALL, "stop": {"reason": "x", "streamId": SID}},
            Stop(call_id=CALL, stream_id=SID, reason="x"),
        ),
        ({"event": "stop"}, Stop()),
        ({"event": "stop", "stop": None}, Stop()),
    ],
)
def test_stop_shapes(msg: dict[str, Any], expected: Stop) -> None:
    assert parse_obj(msg) == expected


def test_dtmf() -> None:
    assert parse_obj(dtmf_msg()) == Dtmf(
        sequence_number=12,
        stream_id=SID,
        digit="5",
        track="inbound",
        timestamp_ms=1687353805345,
        extra_headers=ExtraHeaders.EMPTY,
    )


@pytest.mark.parametrize("digit", [*"0123456789*#ABCD"])
def test_every_dtmf_digit(digit: str) -> None:
    assert parse_obj(dtmf_msg(digit=digit)).digit == digit


@pytest.mark.parametrize(("digit", "upper"), [("a", "A"), ("b", "B"), ("c", "C"), ("d", "D")])
def test_lower_case_dtmf_letters_are_normalised(digit: str, upper: str) -> None:
    assert parse_obj(dtmf_msg(digit=digit)).digit == upper


def test_dtmf_without_timestamp() -> None:
    msg = dtmf_msg()
    del msg["dtmf"]["timestamp"]
    assert parse_obj(msg).timestamp_ms is None


def test_unknown_event_keeps_the_whole_message() -> None:
    msg = {"sequenceNumber": "3", "event": "mark", "mark": {"name": "x"}}
    event = parse_obj(msg)
    assert event == UnknownEvent(sequence_number=3, event="mark", raw=msg)
    assert dict(event.raw) == msg
    with pytest.raises(TypeError):
        event.raw["event"] = "other"
    hash(event)


def test_unknown_event_never_fails_on_its_sequence_number() -> None:
    assert parse_obj({"event": "end", "sequenceNumber": "x"}).sequence_number is None
    assert parse_obj({"event": "end", "sequenceNumber": True}).sequence_number is None


def test_bytes_are_read_as_utf8() -> None:
    text = json.dumps(start_msg(extra_headers="name=Zoë"), ensure_ascii=False)
    start = parse(text)
    assert isinstance(start, Start)
    assert parse(text.encode()) == start
    assert start.extra_headers["name"] == "Zoë"


# --- Start.format and Media.audio_bytes ------------------------------------------------


@pytest.mark.parametrize("fmt", list(Format))
def test_start_format(fmt: Format) -> None:
    msg = start_msg()
    msg["start"]["mediaFormat"] = {"encoding": fmt.encoding, "sampleRate": fmt.sample_rate}
    assert parse_obj(msg).format is fmt


def test_start_format_ignores_a_rate_suffix() -> None:
    msg = start_msg()
    msg["start"]["mediaFormat"]["encoding"] = "audio/x-mulaw;rate=8000"
    assert parse_obj(msg).format is Format.MULAW_8K


@pytest.mark.parametrize(("encoding", "rate"), [("audio/x-mulaw", 16000), ("audio/opus", 8000)])
def test_start_format_outside_plivos_three(encoding: str, rate: int) -> None:
    msg = start_msg()
    msg["start"]["mediaFormat"] = {"encoding": encoding, "sampleRate": rate}
    start = parse_obj(msg)  # reading is fine: the runtime decides what to do
    with pytest.raises(ProtocolError) as info:
        start.format  # noqa: B018
    assert (info.value.event, info.value.field) == ("start", "start.mediaFormat")
    assert encoding in str(info.value)


@pytest.mark.parametrize("payload", ["AAA", "AA=A", "AAAA\n", "AA AA", "é", "AAA*"])
def test_bad_base64_payload(payload: str) -> None:
    media = parse_obj(media_msg(payload=payload))  # parse does not decode
    with pytest.raises(ProtocolError) as info:
        media.audio_bytes()
    assert (info.value.event, info.value.field) == ("media", "media.payload")


def test_empty_payload_is_no_audio() -> None:
    assert parse_obj(media_msg(payload="")).audio_bytes() == b""


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["nope", "", "{", '{"event": "media"', b"\xff\xfe{}", "[" * 100_000]
)
def test_not_json(text: str | bytes) -> None:
    error = error_of(text)
    assert (error.event, error.field) == (None, None)
    assert error.message.startswith("not JSON")
    assert error.raw is not None


@pytest.mark.parametrize("text", ["[]", "1", "null", '"media"', "true"])
def test_not_an_object(text: str) -> None:
    error = error_of(text)
    assert (error.event, error.field, error.raw) == (None, None, text)
    assert error.message.startswith("expected a JSON object")


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"streamId": SID}, "missing"),
        ({"event": None}, "missing"),
        ({"event": 5}, "expected a string, got 5"),
        ({"event": ["media"]}, 'expected a string, got ["media"]'),
    ],
)
def test_event_tag_missing_or_not_a_string(obj: dict[str, Any], message: str) -> None:
    error = error_of(obj)
    assert (error.event, error.field, error.message) == (None, "event", message)


def test_missing_field() -> None:
    msg = start_msg()
    del msg["start"]["callId"]
    error = error_of(msg)
    assert (error.event, error.field, error.message) == ("start", "start.callId", "missing")
    assert "'start' event" in str(error)
    assert "start.callId" in str(error)


def test_missing_stream_id_everywhere() -> None:
    msg = start_msg()
    del msg["start"]["streamId"]
    assert error_of(msg).field == "start.streamId"


@pytest.mark.parametrize(
    ("msg", "field"),
    [
        (media_msg() | {"media": None}, "media"),
        (media_msg() | {"media": "AAAA"}, "media"),
        (media_msg() | {"media": ["AAAA"]}, "media"),
        (media_msg() | {"media": {}}, "media.track"),
        (start_msg(start={"callId": CALL, "mediaFormat": 8000}), "start.streamId"),
        ({"event": "playedStream", "streamId": SID}, "name"),
        ({"event": "clearedAudio"}, "streamId"),
    ],
)
def test_missing_or_non_object_parent(msg: dict[str, Any], field: str) -> None:
    error = error_of(msg)
    assert error.event == msg["event"]
    assert error.field == field


def test_a_non_object_parent_is_named_as_such() -> None:
    error = error_of(media_msg() | {"media": "AAAA"})
    assert error.message.startswith('expected a JSON object, got "AAAA"')


def test_every_bad_field_is_named_and_the_first_is_the_field() -> None:
    msg = start_msg()
    msg["start"] = {"callId": 1, "tracks": ["inbound", 2], "mediaFormat": "x"}
    error = error_of(msg)
    assert error.field == "start.callId"
    for path in ("start.streamId", "start.accountId", "start.tracks[1]", "start.mediaFormat"):
        assert path in error.message


@pytest.mark.parametrize(
    ("msg", "field", "message"),
    [
        (media_msg(track=1), "media.track", "expected a string, got 1"),
        (media_msg(payload=None), "media.payload", "expected a string, got null"),
        (media_msg() | {"streamId": ["s"]}, "streamId", 'expected a string, got ["s"]'),
        (start_msg(extra_headers=5), "extra_headers", "expected a string, got 5"),
        (media_msg(chunk=1.5), "media.chunk", "expected an integer or a string of digits, got 1.5"),
        (media_msg(timestamp="12a"), "media.timestamp", None),
        (dtmf_msg(track=None), "dtmf.track", None),
    ],
)
def test_mistyped_field(msg: dict[str, Any], field: str, message: str | None) -> None:
    error = error_of(msg)
    assert (error.event, error.field) == (msg["event"], field)
    if message is not None:
        assert error.message == message


@pytest.mark.parametrize("tracks", ["inbound", None, {"0": "inbound"}])
def test_tracks_must_be_a_list(tracks: object) -> None:
    msg = start_msg()
    msg["start"]["tracks"] = tracks
    assert error_of(msg).field == "start.tracks"


@pytest.mark.parametrize("digit", ["x", "E", "10", "", " 1", 1, None])
def test_bad_dtmf_digit(digit: object) -> None:
    error = error_of(dtmf_msg(digit=digit))
    assert (error.event, error.field) == ("dtmf", "dtmf.digit")


def test_a_bad_digit_is_named_with_the_other_bad_fields() -> None:
    error = error_of({"event": "dtmf", "dtmf": {"digit": "Z"}})
    assert error.field == "streamId"
    assert "dtmf.digit: DTMF digit must be one of 0-9 * # A-D, got 'Z'" in error.message
    assert "dtmf.track: missing" in error.message


def test_raw_is_the_whole_text_and_str_truncates_it() -> None:
    msg = media_msg(track=1, payload="A" * 1000)
    text = json.dumps(msg)
    error = error_of(text)
    assert error.raw == text
    shown = str(error)
    assert text[:200] in shown
    assert text[:201] not in shown
    assert shown.endswith(f"…({len(text) - 200} more))")


def test_protocol_error_is_a_value_error_and_pickles() -> None:
    error = error_of(dtmf_msg(digit="x"))
    assert isinstance(error, ValueError)
    again = pickle.loads(pickle.dumps(error))
    assert (again.message, again.event, again.field, again.raw) == (
        error.message,
        error.event,
        error.field,
        error.raw,
    )
    assert str(again) == str(error)


def test_constructing_a_dtmf_with_a_bad_digit_raises() -> None:
    with pytest.raises(ProtocolError) as info:
        Dtmf(stream_id=SID, digit="x", track="inbound")
    assert (info.value.event, info.value.field) == ("dtmf", "dtmf.digit")


# --- the lean media path agrees with the general one -----------------------------------


MEDIA_VARIANTS = [
    media_msg(),
    media_msg(chunk="469"),
    media_msg(timestamp=1687353805345),
    media_msg(timestamp="-5"),
    media_msg(timestamp="1" * 30),
    media_msg(payload=""),
    media_msg(track="outbound"),
    media_msg() | {"sequenceNumber": "887"},
    media_msg() | {"sequenceNumber": None},
    {k: v for k, v in media_msg().items() if k != "sequenceNumber"},
    {k: v for k, v in media_msg().items() if k != "extra_headers"},
    media_msg() | {"extra_headers": "a=1;b=2"},
    media_msg() | {"extra_headers": {"a": "1"}},
    media_msg() | {"extra_headers": None},
    media_msg(extra=1) | {"more": [1]},
    # unreadable ones: both paths must raise the same error
    media_msg(chunk=True),
    media_msg(chunk=None),
    media_msg(timestamp="²"),
    media_msg(timestamp=""),
    media_msg(track=None),
    media_msg(payload=5),
    media_msg() | {"sequenceNumber": 1.0},
    media_msg() | {"extra_headers": 1},
    media_msg() | {"media": None},
    media_msg() | {"media": "x"},
    {k: v for k, v in media_msg().items() if k != "streamId"},
]


@pytest.mark.parametrize("msg", MEDIA_VARIANTS)
def test_lean_media_path_agrees_with_the_general_path(msg: dict[str, Any]) -> None:
    text = json.dumps(msg)
    try:
        general: object = _convert.read(_convert.MEDIA, json.loads(text), text)
    except ProtocolError as exc:
        general = (exc.event, exc.field, exc.message, exc.raw)
    try:
        lean: object = parse(text)
    except ProtocolError as exc:
        lean = (exc.event, exc.field, exc.message, exc.raw)
    assert lean == general
    if isinstance(lean, Media):
        assert type(lean.timestamp_ms) is int
        assert type(lean.chunk) is int


def test_media_frames_share_their_parsed_headers() -> None:
    a = parse_obj(media_msg() | {"extra_headers": "k=v"})
    b = parse_obj(media_msg() | {"extra_headers": "k=v"})
    assert a.extra_headers is b.extra_headers


# --- in two halves: load_event, then parse_loaded ----------------------------------------------


@pytest.mark.parametrize(
    "msg",
    [
        start_msg(),
        dtmf_msg(),
        {"event": "playedStream", "streamId": SID, "name": "n"},
        {"event": "mystery", "x": 1},
        *MEDIA_VARIANTS,
    ],
)
def test_the_two_halves_are_parse(msg: dict[str, Any]) -> None:
    text = json.dumps(msg)
    try:
        whole: object = parse(text)
    except ProtocolError as exc:
        whole = (exc.event, exc.field, exc.message, exc.raw)
    tag, obj = load_event(text)
    assert tag == msg["event"]
    assert obj == msg
    try:
        halves: object = parse_loaded(tag, obj, text)
    except ProtocolError as exc:
        halves = (exc.event, exc.field, exc.message, exc.raw)
    assert halves == whole


@pytest.mark.parametrize(
    ("text", "field"),
    [("not json", None), ("[1]", None), ('{"x":1}', "event"), ('{"event":5}', "event")],
)
def test_load_event_refuses_what_has_no_event_tag(text: str, field: str | None) -> None:
    with pytest.raises(ProtocolError) as info:
        load_event(text)
    assert info.value.field == field
    with pytest.raises(ProtocolError) as whole:
        parse(text)
    assert (whole.value.field, whole.value.message) == (field, info.value.message)
