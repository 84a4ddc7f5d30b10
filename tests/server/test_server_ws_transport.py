"""``WebSocketTransport`` on both ends of a real trio-websocket connection (in-memory streams)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing
import trio_websocket

from callflow.runtime import TransportClosed
from callflow.server import WebSocketTransport


@pytest.fixture
async def pair(
    nursery: trio.Nursery,
) -> AsyncIterator[tuple[WebSocketTransport, WebSocketTransport]]:
    """(client, server) transports over one WebSocket on a memory stream pair."""
    client_stream, server_stream = trio.testing.memory_stream_pair()
    client_ws: list[trio_websocket.WebSocketConnection] = []

    async def connect() -> None:
        client_ws.append(
            await trio_websocket.wrap_client_stream(
                nursery,
                client_stream,  # type: ignore[arg-type]  # any Stream works; typed too narrowly
                "localhost",
                "/s",
            )
        )

    nursery.start_soon(connect)
    request = await trio_websocket.wrap_server_stream(nursery, server_stream)
    server_ws = await request.accept()
    await trio.testing.wait_all_tasks_blocked()
    client = WebSocketTransport(client_ws[0], close_timeout=1.0)
    server = WebSocketTransport(server_ws, close_timeout=1.0)
    yield client, server
    await client.aclose()
    await server.aclose()


async def test_text_both_ways(pair: tuple[WebSocketTransport, WebSocketTransport]) -> None:
    client, server = pair
    await client.send('{"event":"start"}')
    assert await server.receive() == '{"event":"start"}'
    await server.send('{"event":"playAudio"}')
    assert await client.receive() == '{"event":"playAudio"}'


async def test_binary_frame_is_decoded_as_utf8(
    pair: tuple[WebSocketTransport, WebSocketTransport], caplog: pytest.LogCaptureFixture
) -> None:
    client, server = pair
    await client.websocket.send_message('{"k":"é"}'.encode() + b"\xff")
    await client.websocket.send_message(b"{}")
    assert await server.receive() == '{"k":"é"}\ufffd'
    assert await server.receive() == "{}"
    assert sum("binary frame" in r.message for r in caplog.records) == 1


async def test_peer_close_maps_code_and_reason(
    pair: tuple[WebSocketTransport, WebSocketTransport],
) -> None:
    client, server = pair
    await client.send("last")
    await client.aclose(4000, "bye")
    assert await server.receive() == "last"  # what arrived before the close is delivered
    with pytest.raises(TransportClosed) as info:
        await server.receive()
    assert (info.value.code, info.value.reason) == (4000, "bye")
    with pytest.raises(TransportClosed):
        await server.send("too late")
    assert server.close_code == 4000


async def test_aclose_is_idempotent_and_local_calls_fail(
    pair: tuple[WebSocketTransport, WebSocketTransport],
) -> None:
    client, server = pair
    await server.aclose(1000, "done")
    await server.aclose()
    with pytest.raises(TransportClosed):
        await server.receive()
    with pytest.raises(TransportClosed):
        await server.send("x")
    with pytest.raises(TransportClosed) as info:
        await client.receive()
    assert info.value.code == 1000


async def test_aclose_gives_up_on_a_silent_peer(autojump_clock: trio.testing.MockClock) -> None:
    # The client end is a raw memory stream that never answers the close frame.
    client_stream, server_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:

        async def fake_client() -> None:
            await client_stream.send_all(
                b"GET /s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            await trio.sleep_forever()

        nursery.start_soon(fake_client)
        request = await trio_websocket.wrap_server_stream(nursery, server_stream)
        server = WebSocketTransport(await request.accept(), close_timeout=3.0)
        start = trio.current_time()
        await server.aclose()
        assert trio.current_time() - start == pytest.approx(3.0)
        nursery.cancel_scope.cancel()
