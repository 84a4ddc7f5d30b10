"""Escaping, bounding and rate limiting of log lines that quote outside values."""

from __future__ import annotations

import ast
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callflow.observe import MAX_ESCAPED_CHARS, MAX_VALUE_CHARS, WarningLimiter, escape, quote
from callflow.observe._metrics import Metrics


@given(st.one_of(st.text(), st.binary()))
def test_escape_never_has_a_control_character_and_is_bounded(value: str | bytes) -> None:
    out = escape(value)
    assert out.isprintable()
    assert len(out) <= MAX_ESCAPED_CHARS


@given(st.text(max_size=MAX_VALUE_CHARS // 10))
def test_escape_of_a_short_value_reads_back_as_the_value(value: str) -> None:
    # Short enough that every escape fits: the text is the value's repr, without quotes.
    out = escape(value)
    assert ast.literal_eval("'" + out.replace("'", "\\'") + "'") == value


def test_escape_writes_newline_nul_and_backslash_as_repr_does() -> None:
    assert escape("a\nb\r\x00c\\d\u2028") == "a\\nb\\r\\x00c\\\\d\\u2028"


def test_escape_cuts_long_values_and_says_how_much_is_left() -> None:
    out = escape("x" * 1_000_000)
    assert out == "x" * MAX_VALUE_CHARS + f"…({1_000_000 - MAX_VALUE_CHARS} more)"


def test_escape_never_cuts_an_escape_sequence() -> None:
    out = escape("\n" * 1000, limit=11)
    assert out == "\\n" * 5 + "…(995 more)"


def test_quote_wraps_in_single_quotes() -> None:
    assert quote("a\nb") == "'a\\nb'"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_limiter_logs_a_burst_then_one_summary(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    logger = logging.getLogger("test.limiter")
    metrics = Metrics()
    limiter = WarningLimiter(
        logger, "unreadable", "unreadable messages", burst=3, clock=clock, metrics=metrics
    )
    with caplog.at_level(logging.WARNING, "test.limiter"):
        for n in range(10_000):
            clock.now = n * 0.001
            limiter.warning("call=c1", "unreadable message %d", n)
        limiter.flush("call=c1")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:3] == [f"call=c1 unreadable message {n}" for n in range(3)]
    assert lines[3:] == ["call=c1 … 9 997 more unreadable messages on this call in 10 s"]
    suppressed = {"kind": "unreadable"}
    assert (
        metrics.registry.get_sample_value("callflow_log_lines_suppressed_total", suppressed)
        == 9_997
    )


def test_limiter_starts_a_new_window_with_the_last_ones_summary(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    logger = logging.getLogger("test.limiter")
    limiter = WarningLimiter(
        logger, "bad", "bad requests", where="from this peer", burst=1, clock=clock
    )
    with caplog.at_level(logging.WARNING, "test.limiter"):
        limiter.warning("peer=a", "bad %s", 1)
        limiter.warning("peer=a", "bad %s", 2)
        clock.now = 61.0
        limiter.warning("peer=a", "bad %s", 3)
    assert [r.getMessage() for r in caplog.records] == [
        "peer=a bad 1",
        "peer=a … 1 more bad requests from this peer in 61 s",
        "peer=a bad 3",
    ]


def test_limiter_bounds_many_keys_together(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    logger = logging.getLogger("test.limiter")
    limiter = WarningLimiter(logger, "bad", "bad requests", burst=5, total_burst=10, clock=clock)
    with caplog.at_level(logging.WARNING, "test.limiter"):
        for n in range(1000):
            limiter.warning(f"peer={n}", "bad")
        clock.now = 60.0
        limiter.warning("peer=x", "bad")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 12
    assert lines[10] == "… 990 more bad requests (all sources) in 60 s"


def test_limiter_remembers_a_bounded_number_of_keys(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    logger = logging.getLogger("test.limiter")
    limiter = WarningLimiter(logger, "x", "x", burst=1, max_keys=2, total_burst=10**9, clock=clock)
    with caplog.at_level(logging.WARNING, "test.limiter"):
        for n in range(100):
            limiter.warning(f"k{n}", "m")
            limiter.warning(f"k{n}", "m")
    assert len(limiter._keys) == 2
    # Each forgotten key's summary is written when it is forgotten.
    assert "k0 … 1 more x on this call in 0 s" in [r.getMessage() for r in caplog.records]
