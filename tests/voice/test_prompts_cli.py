"""``callflow prompts build`` and the loader's check of a module that declares text prompts."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from callflow import FlowLoadError, load_flows
from callflow.cli import main
from callflow.voice import EspeakNg, _piper, _select

FLOW = """
from callflow import Call, Format, flow
from callflow.voice import Prompts

TEXT = Prompts(hello="Hello there.", bye="Goodbye now.")

@flow("/hi", format=Format.MULAW_8K)
async def hi(call: Call) -> None:
    await call.say(TEXT.hello)
    await call.say(TEXT.bye)
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "hi.py").write_text(textwrap.dedent(FLOW))
    return flows


def test_build_renders_each_declared_prompt_once(
    folder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    espeak: EspeakNg,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = tmp_path / "cache"
    # the command sets both in its process: let monkeypatch put them back after
    monkeypatch.setenv("CALLFLOW_PROMPT_CACHE", str(cache))
    monkeypatch.setenv("CALLFLOW_TTS", "espeak-ng")
    _select.default_tts.cache_clear()
    try:
        args = ["prompts", "build", str(folder), "--tts", "espeak-ng", "--cache", str(cache)]
        assert main(args) == 0
        assert "rendered 2, already cached 0" in capsys.readouterr().out
        assert len(list(cache.rglob("*.wav"))) == 2
        assert len(list(cache.rglob("*.MULAW_8K"))) == 2  # encoded for the flow's format
        assert main(args) == 0
        assert "rendered 0, already cached 2" in capsys.readouterr().out
    finally:
        _select.default_tts.cache_clear()


def test_a_module_with_text_prompts_and_no_engine_fails_to_load(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CALLFLOW_TTS", raising=False)
    monkeypatch.delenv("CALLFLOW_PIPER_VOICE", raising=False)
    monkeypatch.setattr(_select, "find_piper", lambda program="piper": None)
    monkeypatch.setattr(_piper, "find_piper", lambda program="piper": None)
    _select.default_tts.cache_clear()
    try:
        with pytest.raises(FlowLoadError, match=r"/hi declares text prompts.*apt-get install"):
            load_flows(folder)
    finally:
        _select.default_tts.cache_clear()
