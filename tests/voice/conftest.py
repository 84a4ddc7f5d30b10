"""Fixtures for the voice tests: engines that are really there, and a render cache per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from callflow.voice import EspeakNg, Piper, RenderCache, TtsUnavailable
from tests.support.debian import require_binary


@pytest.fixture
def espeak() -> EspeakNg:
    require_binary("espeak-ng", package="espeak-ng")
    return EspeakNg()


@pytest.fixture(scope="session")
def piper() -> Piper:
    try:
        return Piper()
    except TtsUnavailable as exc:  # the test extra installs it; a bare checkout may not have it
        pytest.skip(str(exc))


@pytest.fixture
def cache(tmp_path: Path) -> RenderCache:
    return RenderCache(tmp_path / "prompts")
