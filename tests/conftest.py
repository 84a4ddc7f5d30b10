"""Fixtures for every test of the project."""

from __future__ import annotations

import os
import tempfile

import pytest

from callflow.runtime import _warnings

# Text prompts rendered by the tests go to a folder of this session, not the user's cache.
os.environ.setdefault("CALLFLOW_PROMPT_CACHE", tempfile.mkdtemp(prefix="callflow-prompts-"))


@pytest.fixture(autouse=True)
def _fresh_log_limits() -> None:
    """The runtime's per-call warning limits (10 a minute per call, 200 in all) are process
    wide: each test starts them afresh, so one test's noise never hides another's lines."""
    _warnings.reset()
