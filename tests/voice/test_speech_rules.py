"""How a recognizer's final text becomes an answer (``gather``/``ask`` with speech)."""

from __future__ import annotations

import pytest

from callflow import Invalid, Speech
from callflow.runtime._speech import SpeechRules, choice_rules, parse_input
from callflow.voice import SttResult


def test_a_hint_in_the_text_is_the_answer_as_written() -> None:
    rules = SpeechRules(hints=("Sales", "customer support"), closed=True)
    assert rules.judge(SttResult("sales.", 0.9, True)) == Speech("Sales")
    assert rules.judge(SttResult("I need Customer Support, please", 0.8, True)) == Speech(
        "customer support"
    )


def test_closed_rejects_other_text_and_open_returns_it() -> None:
    closed = SpeechRules(hints=("sales",), closed=True)
    open_ = SpeechRules(hints=("sales",))
    assert closed.judge(SttResult("the weather", 0.9, True)) == Invalid("the weather")
    assert open_.judge(SttResult("the weather", 0.9, True)) == Speech("the weather")


def test_nothing_recognised_or_too_unsure_is_invalid() -> None:
    rules = SpeechRules(hints=("sales",), min_confidence=0.5)
    assert rules.judge(None) == Invalid("")
    assert rules.judge(SttResult("", 0.0, True)) == Invalid("")
    assert rules.judge(SttResult("sales", 0.4, True)) == Invalid("sales")


def test_input_names_plivo_input_types() -> None:
    assert parse_input("dtmf speech") == {"dtmf", "speech"}
    assert parse_input("speech") == {"speech"}
    with pytest.raises(ValueError, match="input must be"):
        parse_input("voice")


def test_choices_list_takes_keys_one_to_nine() -> None:
    assert choice_rules(["sales", "support"]) == (
        {"1": "sales", "2": "support"},
        ("sales", "support"),
    )
    assert choice_rules({"0": "agent", "a": "x"}) == ({"0": "agent", "A": "x"}, ("agent", "x"))
    with pytest.raises(ValueError, match="1-9"):
        choice_rules([str(i) for i in range(10)])
    with pytest.raises(ValueError, match="single DTMF"):
        choice_rules({"12": "x"})
    with pytest.raises(ValueError, match="empty phrase"):
        choice_rules(["  "])
