"""The ledger's part in a reconnect, synchronously: what is unheard when the socket drops, and
what is sent again on the new one (pure: no trio, no IO)."""

from __future__ import annotations

import pytest

from callflow.runtime._ledger import Ledger


def sent_prompt(ledger: Ledger, chunks: int, seconds: float = 1.0) -> None:
    """``chunks`` payloads of ``seconds`` each, a checkpoint after each (as ``say`` does)."""
    for index in range(chunks):
        ledger.audio_sent(seconds, 0.0, f"p{index}")
        ledger.mark(f"m{index}")


def test_the_drop_stops_playback_at_the_last_acknowledged_checkpoint() -> None:
    ledger = Ledger()
    sent_prompt(ledger, 3)
    assert ledger.played("m0", now=1.0) is not None
    assert ledger.heard_position(now=1.4) == pytest.approx(1.4)  # the estimate
    assert ledger.pause(now=1.4) == pytest.approx(1.0)  # but only m0 is known played
    assert ledger.heard_position(now=9.0) == pytest.approx(1.0)  # nothing plays while detached
    marks, audio = ledger.resume_plan()
    assert [m.name for m in marks] == ["m1", "m2"]
    assert [(sent.payload, from_s) for sent, from_s in audio] == [("p1", 1.0), ("p2", 2.0)]
    ledger.resumed(now=10.0)
    assert ledger.queued_s == pytest.approx(2.0)  # everything not known played, queued again
    assert ledger.heard_position(now=10.5) == pytest.approx(1.5)  # playing on from 1.0
    assert ledger.played("m1", now=10.6) is not None
    assert ledger.played("m2", now=11.6) is not None
    assert ledger.queued_s == 0
    assert ledger.resume_plan() == ([], [])  # all heard: nothing kept


def test_with_no_ack_everything_is_sent_again() -> None:
    ledger = Ledger()
    sent_prompt(ledger, 2)
    ledger.pause(now=5.0)  # no ack ever came: nothing is known played
    marks, audio = ledger.resume_plan()
    assert [m.name for m in marks] == ["m0", "m1"]
    assert [(s.payload, f) for s, f in audio] == [("p0", 0.0), ("p1", 1.0)]


def test_payloads_known_played_are_forgotten() -> None:
    ledger = Ledger()
    sent_prompt(ledger, 4)
    ledger.played("m2", now=3.0)
    _, audio = ledger.resume_plan()
    assert [s.payload for s, _ in audio] == ["p3"]


def test_a_cleared_prompt_is_not_sent_again() -> None:
    ledger = Ledger()
    sent_prompt(ledger, 3)
    ledger.clear_sent()
    assert ledger.clears_pending == 1
    ledger.pause(now=0.5)
    ledger.cleared()  # the drop completes the clear in flight
    assert ledger.resume_plan() == ([], [])
    ledger.audio_sent(1.0, 0.6, "after")
    ledger.mark("a")
    marks, audio = ledger.resume_plan()
    assert [m.name for m in marks] == ["a"]
    assert [(s.payload, f) for s, f in audio] == [("after", 3.0)]
