from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callflow.voice import Break, Prompts, Text, plain_segments


def test_plain_text_is_one_segment() -> None:
    assert plain_segments(Text("Your balance is 42 dollars")) == ["Your balance is 42 dollars"]


def test_ssml_is_detected_by_its_speak_element() -> None:
    assert Text("<speak>Hi</speak>").is_ssml
    assert not Text("Press <1> now").is_ssml
    assert Text("Hi", ssml=True).is_ssml


def test_ssml_breaks_and_digits_become_plain_segments() -> None:
    text = Text(
        '<speak>Your code is <say-as interpret-as="digits">4 0 7</say-as>.'
        '<break time="500ms"/>Goodbye<break strength="strong"/></speak>'
    )
    assert plain_segments(text) == ["Your code is 4 0 7 .", Break(0.5), "Goodbye", Break(0.75)]


def test_break_is_capped_and_unknown_strength_is_medium() -> None:
    text = Text('<speak>a<break time="90s"/>b<break strength="odd"/>c</speak>')
    assert plain_segments(text) == ["a", Break(10.0), "b", Break(0.4), "c"]


def test_malformed_ssml_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not well-formed"):
        plain_segments(Text("<speak>unclosed", ssml=True))


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_text_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="needs some words"):
        Text(bad)


def test_text_must_be_a_str() -> None:
    with pytest.raises(TypeError):
        Text(42)  # type: ignore[arg-type]


@given(st.text(min_size=1).filter(lambda s: s.strip()))
def test_any_ssml_from_outside_gives_words_or_a_value_error(body: str) -> None:
    text = Text(f"<speak>{body}</speak>")
    try:
        parts = plain_segments(text)
    except ValueError:
        return
    assert all(isinstance(p, str | Break) for p in parts)


def test_prompts_give_texts_by_name() -> None:
    prompts = Prompts(welcome="Welcome.", code=Text("<speak>1</speak>"))
    assert prompts.welcome == Text("Welcome.")
    assert prompts["code"].is_ssml
    assert list(prompts) == ["welcome", "code"]
    with pytest.raises(AttributeError, match="declared: welcome, code"):
        _ = prompts.missing
    with pytest.raises(TypeError):
        Prompts(bad=3)  # type: ignore[arg-type]
