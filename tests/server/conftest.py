"""The server tests' fixture: ``start_server``, serve_flows on 127.0.0.1 port 0."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import pytest
import trio
from serverkit import StartServer, echo

from callflow import Flow
from callflow.server import ServerInfo, serve_flows


@pytest.fixture
def start_server(nursery: trio.Nursery) -> StartServer:
    """``info = await start_server(flows=[echo], **serve_flows_kwargs)`` on 127.0.0.1:0."""

    async def start(flows: Sequence[Flow] = (echo,), **kwargs: Any) -> ServerInfo:
        kwargs.setdefault("drain_timeout", 1.0)
        info: ServerInfo = await nursery.start(
            functools.partial(serve_flows, list(flows), port=0, **kwargs)
        )
        return info

    return start
