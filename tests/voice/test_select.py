"""Choosing an engine, and the error when there is none."""

from __future__ import annotations

import pytest

from callflow.voice import EspeakNg, Piper, TtsChoice, TtsUnavailable, _piper, resolve_tts


@pytest.fixture
def no_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CALLFLOW_TTS", raising=False)
    monkeypatch.delenv("CALLFLOW_PIPER_VOICE", raising=False)
    monkeypatch.setattr(_piper, "find_piper", lambda program="piper": None)
    monkeypatch.setattr("callflow.voice._select.find_piper", lambda program="piper": None)


@pytest.mark.usefixtures("no_engines")
def test_auto_without_any_engine_names_what_to_install() -> None:
    with pytest.raises(TtsUnavailable, match=r"callflow-plivo\[piper\].*apt-get install espeak-ng"):
        resolve_tts("auto")


@pytest.mark.usefixtures("no_engines")
def test_an_explicit_missing_engine_fails_when_chosen_not_when_first_used() -> None:
    with pytest.raises(TtsUnavailable, match="apt-get install espeak-ng"):
        TtsChoice("espeak-ng")
    with pytest.raises(TtsUnavailable, match="Piper is not installed"):
        TtsChoice("piper")


@pytest.mark.usefixtures("no_engines")
def test_auto_is_resolved_on_first_use_or_check() -> None:
    choice = TtsChoice("auto")  # a WAV-only flow loads without an engine
    with pytest.raises(TtsUnavailable):
        choice.check()


def test_unknown_engine_name() -> None:
    with pytest.raises(ValueError, match="unknown text-to-speech engine"):
        resolve_tts("festival")


def test_server_choice_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, espeak: EspeakNg
) -> None:
    monkeypatch.setenv("CALLFLOW_TTS", "espeak-ng:en-gb")
    engine = resolve_tts("auto")
    assert isinstance(engine, EspeakNg)
    assert engine.default_voice == "en-gb"


def test_auto_prefers_piper_with_a_voice(piper: Piper, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLFLOW_TTS", raising=False)
    assert isinstance(resolve_tts("auto"), Piper)


def test_piper_voice_that_does_not_exist(piper: Piper) -> None:
    with pytest.raises(TtsUnavailable, match="does not exist"):
        Piper("/nonexistent/voice.onnx")
