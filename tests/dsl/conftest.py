"""The DSL tests' fixture: ``plivo_api``, a recording stand-in for Plivo's REST API."""

from __future__ import annotations

import functools

import pytest
import trio
from restkit import RestRecorder


@pytest.fixture
async def plivo_api(nursery: trio.Nursery) -> RestRecorder:
    """A :class:`RestRecorder` serving on 127.0.0.1 (a free port), for ``PlivoRest(…,
    api_url=plivo_api.api_url)``. Real sockets: tests using it run on the real clock."""
    recorder = RestRecorder()
    serve = functools.partial(trio.serve_tcp, recorder.handle, 0, host="127.0.0.1")
    listeners = await nursery.start(serve)
    recorder.port = listeners[0].socket.getsockname()[1]
    return recorder
