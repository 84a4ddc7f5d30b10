"""Constants shared by the end-to-end tests (the fixtures are in conftest.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from callflow.server import ServerInfo

AUTH_TOKEN = "MY_AUTH_TOKEN_0123456789abcdef"
"""The Plivo auth token the e2e server checks signatures and stream tokens against."""

FLOWS = Path(__file__).resolve().parents[2] / "flows"
"""The bundled example flows the README serves."""

ServeBundled = Callable[..., Awaitable[ServerInfo]]
"""The ``serve_bundled`` fixture: ``info = await serve_bundled(*extra_flows)``."""
