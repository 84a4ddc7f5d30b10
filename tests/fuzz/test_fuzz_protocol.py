"""Property tests on the protocol parser: any text, any JSON gives one value or one clear
``ProtocolError`` whose text is one bounded, log-safe line; never another exception."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from callflow.protocol import ProtocolError, parse, parse_command
from callflow.protocol._events import Dtmf, Media, UnknownEvent

EVENTS = ["start", "media", "dtmf", "playedStream", "played", "clearedAudio", "stop", "x"]
COMMANDS = ["playAudio", "checkpoint", "clearAudio", "sendDTMF", "x"]
KEYS = [
    "event", "sequenceNumber", "streamId", "start", "media", "dtmf", "name", "stop",
    "callId", "accountId", "tracks", "mediaFormat", "encoding", "sampleRate", "track",
    "timestamp", "chunk", "payload", "digit", "extra_headers", "contentType", "\n", "",
]  # fmt: skip

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["inbound", "audio/x-mulaw", "8000", "5", "A" * 8, "\n\x00"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=20,
)


def message(tags: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object whose ``event`` is one of ``tags`` and whose other keys are near misses
    of Plivo's shapes."""
    return st.builds(
        lambda tag, body: {**body, "event": tag},
        st.sampled_from(tags) | st.text(max_size=10),
        st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6),
    )


def assert_clear(error: ProtocolError) -> None:
    text = str(error)
    assert text.isprintable()
    assert len(text) <= 1000
    assert text.startswith("bad Plivo ")
    if error.event == "dtmf":  # a key of a PIN is never shown
        assert text.endswith("a dtmf message may carry a key of a PIN")


def read(text: str | bytes) -> None:
    try:
        event = parse(text)
    except ProtocolError as error:
        assert_clear(error)
        return
    assert type(event).__name__ in {
        "Start", "Media", "Dtmf", "PlayedStream", "ClearedAudio", "Stop", "UnknownEvent",
    }  # fmt: skip
    if isinstance(event, Media):
        try:
            event.audio_bytes()
        except ProtocolError as error:
            assert_clear(error)
    if isinstance(event, Dtmf):
        assert event.digit in "0123456789*#ABCD"
    if isinstance(event, UnknownEvent):
        assert isinstance(event.event, str)


@given(st.text(max_size=300) | st.binary(max_size=300))
def test_any_text_or_bytes(text: str | bytes) -> None:
    read(text)


@given(json_values)
def test_any_json(value: object) -> None:
    read(json.dumps(value))


@settings(max_examples=300)
@given(message(EVENTS))
def test_near_misses_of_every_event(obj: dict[str, Any]) -> None:
    read(json.dumps(obj))
    read(json.dumps(obj).encode())


@given(message(COMMANDS) | json_values.map(lambda v: {"event": "playAudio", "media": v}))
def test_any_command(obj: dict[str, Any]) -> None:
    try:
        parse_command(json.dumps(obj))
    except ProtocolError as error:
        assert_clear(error)
