"""The fuzz tests' fixtures: the real server on 127.0.0.1 (``start_server``, as the server
tests have it) and the server tests' helpers (``serverkit``) on the import path."""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

sys.path.insert(0, str(Path(__file__).parent.parent / "server"))

from serverkit import StartServer, echo

from callflow import Flow
from callflow.server import ServerInfo, serve_flows


@pytest.fixture
def start_server(nursery: trio.Nursery) -> StartServer:
    """``info = await start_server(flows=[echo], **serve_flows_kwargs)`` on 127.0.0.1:0."""

    async def start(flows: Sequence[Flow] = (echo,), **kwargs: Any) -> ServerInfo:
        kwargs.setdefault("drain_timeout", 1.0)
        # No loop watchdog: its stall report (a stack, when the machine is loaded) is the
        # server's own multi-line text, not the peer's.
        kwargs.setdefault("loop_stall_threshold", None)
        info: ServerInfo = await nursery.start(
            functools.partial(serve_flows, list(flows), port=0, **kwargs)
        )
        return info

    return start
