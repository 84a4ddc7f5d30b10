"""Every WebSocket message sample in Plivo's pages (``/work/shared/seeds``) reads as expected.

The samples are copied from seed ``002_2eb9af72bc831cdc.txt`` (the FAQ; the other seeds show
no WebSocket JSON) with one change: the page indents with U+00A0 NO-BREAK SPACE, which JSON
does not accept as whitespace, so each was replaced by a plain space.
``test_samples_are_verbatim`` checks that against the seed file when it is present.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from callflow.protocol import (
    Checkpoint,
    ClearAudio,
    ClearedAudio,
    ExtraHeaders,
    Format,
    Media,
    PlayAudio,
    PlayedStream,
    Start,
    encode,
    encode_event,
    parse,
    parse_command,
)

SEED = Path(__file__).resolve().parents[2].parent / "shared" / "seeds" / "002_2eb9af72bc831cdc.txt"

CHECKPOINT = """{

      "event": "checkpoint",

      "streamId": "20170ada-f610-433b-8758-c02a2aab3662",

      "name": "customer greeting audio"

    }"""

PLAYED = """{

      "event": "played",

      "streamId": "20170ada-f610-433b-8758-c02a2aab3662",

      "name": "customer greeting audio"

    }"""

CLEAR_AUDIO = """{

      "event": "clearAudio",

      "streamId": "b77e037d-4119-44b5-902d-25826b654539"

    }"""

CLEARED_AUDIO = """{

      "sequenceNumber": 0,

      "event": "clearedAudio",

      "streamId": "20170ada-f610-433b-8758-c02a2aab3662"

    }"""

PLAY_AUDIO = """{
     "event": "playAudio",
     "media": {
       "contentType": "audio/x-l16 or audio/x-mulaw",
       "sampleRate": 8000,
       "payload": "base64 encoded raw audio.."
     }
    }"""

START = """{

      "sequenceNumber": 0,

      "event": "start",

      "start": {

        "callId": "8c43a765-94fa-4ee9-b9a3-242703e41f63",

        "streamId": "b77e037d-4119-44b5-902d-25826b654539",

        "accountId": "155747",

        "tracks": [

          "inbound",

          "outbound"

        ],

        "mediaFormat": {

          "encoding": "audio/x-l16",

          "sampleRate": 8000

        }

      },

      "extra_headers": "{}"

    }"""

MEDIA = """{

      "sequenceNumber": 887,

      "streamId": "20170ada-f610-433b-8758-c02a2aab3662",

      "event": "media",

      "media": {

        "track": "inbound",

        "timestamp": "1687353805345",

        "chunk": 469,

        "payload": "CAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAAIAAgACAA="

      },

      "extra_headers": "{}"

    }"""  # noqa: E501 (the seed's payload line)


SAMPLES = [CHECKPOINT, PLAYED, CLEAR_AUDIO, CLEARED_AUDIO, PLAY_AUDIO, START, MEDIA]


def test_samples_are_verbatim() -> None:
    if not SEED.exists():
        pytest.skip(f"seed file not present at {SEED}")
    page = SEED.read_text(encoding="utf-8").replace("\xa0", " ")
    for sample in SAMPLES:
        assert sample in page


def test_start() -> None:
    event = parse(START)
    assert event == Start(
        sequence_number=0,
        call_id="8c43a765-94fa-4ee9-b9a3-242703e41f63",
        stream_id="b77e037d-4119-44b5-902d-25826b654539",
        account_id="155747",
        tracks=("inbound", "outbound"),
        encoding="audio/x-l16",
        sample_rate=8000,
        extra_headers=ExtraHeaders.EMPTY,
    )
    assert event.format is Format.L16_8K
    assert event.extra_headers.raw == "{}"
    assert len(event.extra_headers) == 0


def test_media() -> None:
    event = parse(MEDIA)
    assert isinstance(event, Media)
    assert event.sequence_number == 887
    assert event.stream_id == "20170ada-f610-433b-8758-c02a2aab3662"
    assert event.track == "inbound"
    assert event.timestamp_ms == 1687353805345
    assert event.chunk == 469
    assert event.payload.startswith("CAAIAAgACAAI")
    assert len(event.payload) == 428
    assert event.extra_headers == ExtraHeaders.EMPTY


def test_media_l16_payload_is_a_quiet_little_endian_plus_8() -> None:
    """PROTOCOL.md §4: 320 bytes = 160 samples = 20 ms of L16 8 kHz, each +8 little-endian."""
    audio = parse(MEDIA)
    assert isinstance(audio, Media)
    raw = audio.audio_bytes()
    assert raw == b"\x08\x00" * 160
    assert Format.L16_8K.duration_s(len(raw)) == 0.02
    assert raw == base64.b64decode(audio.payload)


def test_played_is_played_stream() -> None:
    assert parse(PLAYED) == PlayedStream(
        sequence_number=None,
        stream_id="20170ada-f610-433b-8758-c02a2aab3662",
        name="customer greeting audio",
    )


def test_cleared_audio() -> None:
    assert parse(CLEARED_AUDIO) == ClearedAudio(
        sequence_number=0, stream_id="20170ada-f610-433b-8758-c02a2aab3662"
    )


def test_checkpoint_command() -> None:
    assert parse_command(CHECKPOINT) == Checkpoint(
        "20170ada-f610-433b-8758-c02a2aab3662", "customer greeting audio"
    )


def test_clear_audio_command() -> None:
    assert parse_command(CLEAR_AUDIO) == ClearAudio("b77e037d-4119-44b5-902d-25826b654539")


def test_play_audio_command_without_stream_id() -> None:
    # The FAQ's sample is a template ("audio/x-l16 or audio/x-mulaw"); its shape still reads.
    assert parse_command(PLAY_AUDIO) == PlayAudio(
        None, "audio/x-l16 or audio/x-mulaw", 8000, "base64 encoded raw audio.."
    )


@pytest.mark.parametrize("sample", [START, MEDIA, CLEARED_AUDIO])
def test_encode_event_writes_the_seed_shape(sample: str) -> None:
    """What a fake Plivo writes is the seed's JSON object, key for key."""
    assert json.loads(encode_event(parse(sample))) == json.loads(sample)


def test_played_is_written_as_played_stream() -> None:
    written = json.loads(encode_event(parse(PLAYED)))
    assert written == json.loads(PLAYED) | {"event": "playedStream"}


@pytest.mark.parametrize("sample", [CHECKPOINT, CLEAR_AUDIO, PLAY_AUDIO])
def test_encode_writes_the_seed_shape(sample: str) -> None:
    assert json.loads(encode(parse_command(sample))) == json.loads(sample)
