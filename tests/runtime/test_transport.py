"""The transport seam's ``receive_until`` on a transport that has no inline dispatch."""

from __future__ import annotations

import pytest

from callflow.runtime import (
    InlineDispatch,
    TransportClosed,
    memory_transport_pair,
    receive_until,
)


async def test_receive_until_dispatches_in_order_and_stops_where_asked() -> None:
    plivo, server = memory_transport_pair()
    assert not isinstance(server, InlineDispatch)
    for text in ("a", "stop", "b", "c"):
        await plivo.send(text)
    seen: list[str] = []

    def dispatch(text: str) -> bool:
        seen.append(text)
        return text == "stop"

    await receive_until(server, dispatch)
    assert seen == ["a", "stop"]
    await plivo.aclose()
    with pytest.raises(TransportClosed):
        await receive_until(server, dispatch)
    assert seen == ["a", "stop", "b", "c"]


async def test_receive_until_passes_on_what_dispatch_raises() -> None:
    plivo, server = memory_transport_pair()
    await plivo.send("bad")
    await plivo.send("next")

    def dispatch(text: str) -> bool:
        raise ValueError(text)

    with pytest.raises(ValueError, match="bad"):
        await receive_until(server, dispatch)
    assert await server.receive() == "next"
