"""The end-to-end fixtures: the real server on 127.0.0.1, port 0, serving the bundled flows/."""

from __future__ import annotations

import functools

import pytest
import trio
from e2ekit import AUTH_TOKEN, FLOWS, ServeBundled

from callflow import Flow, load_flows
from callflow.server import ServerInfo, serve_flows


@pytest.fixture
def serve_bundled(nursery: trio.Nursery) -> ServeBundled:
    """``info = await serve_bundled(*extra_flows)``: ``serve_flows`` on 127.0.0.1 port 0 with
    every flow in flows/ (plus ``extra_flows``), Plivo signatures and stream tokens checked
    against :data:`e2ekit.AUTH_TOKEN`. The server stops with the test."""

    async def start(*extra: Flow) -> ServerInfo:
        info: ServerInfo = await nursery.start(
            functools.partial(
                serve_flows,
                [*load_flows(FLOWS), *extra],
                host="127.0.0.1",
                port=0,
                auth_token=AUTH_TOKEN,
                drain_timeout=1.0,
            )
        )
        return info

    return start


@pytest.fixture
async def server(serve_bundled: ServeBundled) -> ServerInfo:
    """The bundled flows served on 127.0.0.1 (see :func:`serve_bundled`)."""
    return await serve_bundled()
