"""What Plivo's side of one call can make the runtime log: bounded, escaped, rate-limited
lines, and never a key of a PIN."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import trio
import trio.testing

from callflow import Call, Format, flow
from callflow.observe import MAX_LINE_CHARS
from callflow.protocol import ExtraHeaders, Start, encode_event
from callflow.testing import FakePlivo


@pytest.fixture
def log_text() -> Iterator[io.StringIO]:
    """Every line ``callflow`` logs, formatted as a file handler would write it."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("callflow")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@flow("/waits", format=Format.MULAW_8K)
async def waits(call: Call) -> None:
    await call.wait_dtmf()


def bad_messages(count: int) -> Iterator[str]:
    """Malformed messages of every sort, forged newlines and NULs included; one in 500 is
    near Plivo's 64 KB limit."""
    forms = [
        "x",
        "\nFORGED 2026-01-01 ERROR callflow.server admin logged in\r\x00",
        '{"event": "media", "media": {"payload": 5}}\nFORGED',
        json.dumps({"event": "start"}),
        "[" * 50,
    ]
    big = [
        json.dumps({"event": "e" * 65_000 + "\nFORGED"}),
        '{"event": "media", "media": {"track": "inbound", "payload": "' + "A" * 60_000 + '"}}',
        "\n" + "FORGED " * 9000,
    ]
    for n in range(count):
        yield big[n // 500 % len(big)] if n % 500 == 0 else forms[n % len(forms)]


async def test_100_000_malformed_messages_make_under_1_mb_of_log(
    autojump_clock: trio.testing.MockClock, log_text: io.StringIO
) -> None:
    async with FakePlivo(waits, call_id="loud-call", send_media=False) as caller:
        for text in bad_messages(100_000):
            await caller.send_raw(text)
        await caller.press("1")
        await caller.hung_up()
    text = log_text.getvalue()
    lines = text.splitlines()
    assert len(text.encode()) < 1_000_000
    assert max(map(len, lines)) <= MAX_LINE_CHARS
    assert not [line for line in lines if line.startswith("FORGED")]
    assert len(lines) == len(text.split("\n")) - 1  # only the handler's own line breaks
    summaries = [line for line in lines if "more unreadable messages on this call" in line]
    assert len(summaries) == 1
    assert "call=loud-call … " in summaries[0]


async def test_an_unknown_event_name_is_cut_and_repeats_are_summed_up(
    autojump_clock: trio.testing.MockClock, log_text: io.StringIO
) -> None:
    async with FakePlivo(waits, call_id="odd-call", send_media=False) as caller:
        name = json.dumps({"event": "n" * 65_000})
        for _ in range(10_000):
            await caller.send_raw(name)
        await caller.press("1")
        await caller.hung_up()
    lines = [line for line in log_text.getvalue().splitlines() if "unknown event" in line]
    assert len(lines) == 11
    assert max(map(len, lines)) < 300
    assert "call=odd-call … 9 990 more unknown events on this call in" in lines[-1]


async def test_repeated_start_events_are_summed_up(
    autojump_clock: trio.testing.MockClock, log_text: io.StringIO
) -> None:
    again = encode_event(
        Start(
            sequence_number=2,
            call_id="twice-call",
            stream_id="s",
            account_id="MA",
            tracks=("inbound",),
            encoding="audio/x-mulaw",
            sample_rate=8000,
            extra_headers=ExtraHeaders.parse("{}"),
        )
    )
    async with FakePlivo(waits, call_id="twice-call", send_media=False) as caller:
        for _ in range(10_000):
            await caller.send_raw(again)
        await caller.press("1")
        await caller.hung_up()
    lines = [line for line in log_text.getvalue().splitlines() if "start event" in line]
    assert len(lines) == 10
    summary = [line for line in log_text.getvalue().splitlines() if "out-of-order" in line]
    assert len(summary) == 1
    assert "call=twice-call … 9 990 more out-of-order events on this call in" in summary[0]


@flow("/pin", format=Format.MULAW_8K)
async def pin(call: Call) -> None:
    await call.gather(max_digits=4, sensitive=True, timeout=30)


@pytest.mark.parametrize(
    "malformed",
    [
        '{"event": "dtmf", "dtmf": {"digit": "7"}',  # cut short: not JSON
        '{"event": "dtmf", "dtmf": {"digit": "77", "track": "inbound"}}',  # two keys
        '{"event": "dtmf", "dtmf": "7"}',  # not an object
        '{"event": "dtmf", "dtmf": {"digit": 7}}',  # not a string
    ],
)
async def test_a_malformed_dtmf_message_during_pin_entry_never_logs_the_key(
    autojump_clock: trio.testing.MockClock, log_text: io.StringIO, malformed: str
) -> None:
    async with FakePlivo(pin, call_id="pin-call", stream_id="s", send_media=False) as caller:
        await caller.send_raw(malformed)
        await caller.press("1234")
        await caller.hung_up()
    text = log_text.getvalue()
    assert "call=pin-call unreadable message" in text
    assert "dtmf" in text
    assert "7" not in text.replace("pin-call", "")


async def test_a_start_whose_call_id_holds_a_line_break_is_unreadable(
    autojump_clock: trio.testing.MockClock, log_text: io.StringIO
) -> None:
    forged = "x\nFORGED ERROR callflow.server admin\r\x00"
    async with FakePlivo(waits, call_id=forged, send_media=False) as caller:
        await caller.hung_up()
    text = log_text.getvalue()
    lines = text.splitlines()
    assert not [line for line in lines if line.startswith("FORGED")]
    assert "field start.callId: expected an id of 1-128 printable characters" in text
    assert "started flow" not in text
