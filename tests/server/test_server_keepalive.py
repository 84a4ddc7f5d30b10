"""Keepalive: every call's socket is pinged, and a peer that stops answering is given up.

In memory with the autojump clock (websockets' sans-IO client on the other end decides when
pongs go back), then once against the real server with a raw TCP peer that goes silent with
no FIN or RST.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator

import attrs
import pytest
import trio
import trio.testing
from serverkit import StartServer, start_message
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from callflow.observe import METRICS
from callflow.runtime import TransportClosed
from callflow.server._keepalive import Keepalive, Pinger
from callflow.server._wsfast import FastWebSocketTransport, ReadLoop

SETTINGS = Keepalive(ping_interval=10.0, pong_timeout=5.0)


async def keep_alive(transport: FastWebSocketTransport, settings: Keepalive) -> None:
    """Watch ``transport`` with a :class:`Pinger` of its own; return once it is given up."""
    pinger, gave_up = Pinger(settings), trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pinger.run)
        with pinger.watch(transport, gave_up.set):
            await gave_up.wait()
        nursery.cancel_scope.cancel()


@attrs.define
class Peer:
    """The client end, and what the server transport's reader saw."""

    proto: ClientProtocol
    stream: trio.SocketStream
    transport: FastWebSocketTransport
    received: list[str] = attrs.Factory(list)
    closed: list[tuple[TransportClosed, float]] = attrs.Factory(list)
    pings: list[float] = attrs.Factory(list)

    async def serve(self, *, answer: bool, send_media_every: float | None = None) -> None:
        """Read what the server writes; pong its pings if ``answer``; optionally keep sending
        text (as Plivo's media) without ever answering a ping."""
        async with trio.open_nursery() as nursery:
            if send_media_every is not None:
                nursery.start_soon(self._media, send_media_every)
            while True:
                try:
                    data = await self.stream.receive_some()
                except trio.BrokenResourceError:  # reset
                    data = b""
                if not data:
                    nursery.cancel_scope.cancel()
                    return
                self.proto.receive_data(data)
                for event in self.proto.events_received():
                    if isinstance(event, Frame) and event.opcode is Opcode.PING:
                        self.pings.append(trio.current_time())
                # websockets' client queues a pong for each ping; send it or drop it
                replies = b"".join(self.proto.data_to_send())
                if answer and replies:
                    await self.stream.send_all(replies)

    async def _media(self, every: float) -> None:
        while True:
            await trio.sleep(every)
            self.proto.send_text(b'{"event":"media"}')
            frames = [d for d in self.proto.data_to_send() if not d.startswith(b"\x8a")]
            await self.stream.send_all(b"".join(frames))


async def _open_peer(
    nursery: trio.Nursery, loop: ReadLoop, name: str, *, read_after: float | None = 0.0
) -> Peer:
    """A transport on one end of a socket pair, read by ``loop`` (as in ``serve_flows``),
    and websockets' client on the other end. The server side starts reading ``read_after``
    seconds from now (None: never), as a server whose loop is behind would."""
    server_sock, client_sock = trio.socket.socketpair()
    client_stream = trio.SocketStream(client_sock)
    proto = ClientProtocol(parse_uri("ws://localhost/s"), max_size=None)
    proto.send_request(proto.connect())
    transport = await FastWebSocketTransport.accept(
        trio.SocketStream(server_sock),
        b"".join(proto.data_to_send()),
        close_timeout=1.0,
        read_loop=loop,
        name=name,
    )
    proto.receive_data(await client_stream.receive_some())
    (response,) = proto.events_received()
    assert isinstance(response, Response)
    assert response.status_code == 101
    p = Peer(proto, client_stream, transport)

    def dispatch(text: str) -> bool:
        p.received.append(text)
        return False

    async def read() -> None:
        if read_after is None:
            return
        await trio.sleep(read_after)
        try:
            await transport.receive_until(dispatch)
        except TransportClosed as exc:
            p.closed.append((exc, trio.current_time()))

    nursery.start_soon(read)
    return p


@pytest.fixture
async def peer(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> AsyncIterator[Peer]:
    """A transport on one end of a socket pair, read by the server's :class:`ReadLoop` (as
    in ``serve_flows``), and websockets' client on the other end."""
    loop = ReadLoop()
    nursery.start_soon(loop.run)
    p = await _open_peer(nursery, loop, "call=k1")
    yield p
    await p.transport.aclose()
    await p.stream.aclose()


async def test_a_peer_that_answers_pings_stays_open(
    nursery: trio.Nursery, peer: Peer, autojump_clock: trio.testing.MockClock
) -> None:
    nursery.start_soon(functools.partial(peer.serve, answer=True))
    with trio.move_on_after(95):
        await keep_alive(peer.transport, SETTINGS)
    assert peer.closed == []
    # one ping every ping_interval + pong_timeout (15 s): 6 of them in 95 s
    assert len(peer.pings) == 6
    assert peer.transport.pongs == 6


async def test_a_silent_peer_is_dropped_as_a_reset_would(
    nursery: trio.Nursery,
    peer: Peer,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    nursery.start_soon(functools.partial(peer.serve, answer=False))  # reads, never answers
    with trio.fail_after(60):
        await keep_alive(peer.transport, SETTINGS)  # returns once it gave the socket up
        await trio.testing.wait_all_tasks_blocked()
    ((closed, at),) = peer.closed
    assert closed.code == 1006  # what the runtime takes as a lost link
    assert "no pong within 5 s" in closed.reason
    assert at - start == pytest.approx(15.0, abs=0.1)  # ping_interval + pong_timeout
    assert len(peer.pings) == 1
    (line,) = [r for r in caplog.records if "peer silent" in r.getMessage()]
    assert line.levelno == logging.WARNING
    assert line.getMessage().startswith("call=k1 ")
    with pytest.raises(TransportClosed) as sent:
        await peer.transport.send("after")
    assert sent.value.code == 1006


async def test_media_without_pongs_does_not_count(
    nursery: trio.Nursery, peer: Peer, autojump_clock: trio.testing.MockClock
) -> None:
    """Only pongs prove liveness (module doc): a peer that sends but never answers a ping is
    given up too, after its media has been read."""
    nursery.start_soon(functools.partial(peer.serve, answer=False, send_media_every=0.02))
    with trio.fail_after(60):
        await keep_alive(peer.transport, SETTINGS)
        await trio.testing.wait_all_tasks_blocked()
    assert len(peer.received) > 500
    ((closed, _),) = peer.closed
    assert closed.code == 1006


async def test_a_pong_not_read_yet_is_waited_for_once_more(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """The peer answers at once, but the server reads nothing until after the first check
    (ping at 10 s, check at 15 s): its pong waits in the socket, so the peer is not silent."""
    loop = ReadLoop()
    nursery.start_soon(loop.run)
    late = await _open_peer(nursery, loop, "call=late", read_after=16.0)
    async with trio.open_nursery() as peer_side:
        peer_side.start_soon(functools.partial(late.serve, answer=True))
        with trio.move_on_after(55):  # pings at 10, 30 and 45 s (the first check put off once)
            await keep_alive(late.transport, SETTINGS)
        peer_side.cancel_scope.cancel()
    assert late.closed == []
    assert late.transport.pongs == len(late.pings) == 3  # each answered, the early one too
    await late.transport.aclose()
    await late.stream.aclose()


async def test_a_socket_never_read_is_given_up_after_one_deferral(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Unread bytes put the verdict off once per ping, not for ever."""
    loop = ReadLoop()
    nursery.start_soon(loop.run)
    stuck = await _open_peer(nursery, loop, "call=stuck", read_after=None)
    start = trio.current_time()
    async with trio.open_nursery() as peer_side:
        peer_side.start_soon(functools.partial(stuck.serve, answer=True))
        with trio.fail_after(60):
            await keep_alive(stuck.transport, SETTINGS)
        peer_side.cancel_scope.cancel()
    # ping at 10 s, a check at 15 s that finds the pong unread, given up at 20 s
    assert trio.current_time() - start == pytest.approx(20.0, abs=0.01)
    assert any("call=stuck peer silent" in r.getMessage() for r in caplog.records)
    await stuck.stream.aclose()


async def test_unsolicited_pongs_count(
    nursery: trio.Nursery, peer: Peer, autojump_clock: trio.testing.MockClock
) -> None:
    async def heartbeat() -> None:
        while True:
            peer.proto.send_pong(b"hb")
            await peer.stream.send_all(b"".join(peer.proto.data_to_send()))
            await trio.sleep(1)

    nursery.start_soon(functools.partial(peer.serve, answer=False))
    nursery.start_soon(heartbeat)
    with trio.move_on_after(60):
        await keep_alive(peer.transport, SETTINGS)
    assert peer.closed == []


async def test_one_pinger_keeps_each_socket_on_its_own_schedule(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """Sockets watched at different times are pinged ``ping_interval`` after their own
    start, the silent one is given up alone, and a stopped watch is let go."""
    loop = ReadLoop()
    nursery.start_soon(loop.run)
    pinger = Pinger(SETTINGS)
    nursery.start_soon(pinger.run)
    peers: list[Peer] = []
    for i in range(3):
        peers.append(await _open_peer(nursery, loop, f"call=p{i}"))
    timeouts: list[str] = []
    began = trio.current_time()
    async with trio.open_nursery() as peers_nursery:
        watches = []
        for i, p in enumerate(peers):
            peers_nursery.start_soon(functools.partial(p.serve, answer=i != 1))  # p1 never answers
            watches.append(pinger.watch(p.transport, functools.partial(timeouts.append, f"p{i}")))
            await trio.sleep(3)
        await trio.sleep(40 - 9)
        assert timeouts == ["p1"]
        assert [c.code for c, _ in peers[1].closed] == [1006]
        assert peers[1].closed[0][1] - began == pytest.approx(3 + 15, abs=0.1)
        for p in (peers[0], peers[2]):
            assert p.closed == []
        # p0 watched at 0 s, p2 at 6 s: pings at 10, 25, 40 s after each one's start
        assert [round(t - began, 1) for t in peers[0].pings] == [10.0, 25.0]
        assert [round(t - began, 1) for t in peers[2].pings] == [16.0, 31.0]
        watches[2].stop()
        await trio.sleep(30)
        assert len(peers[2].pings) == 2  # not pinged once stopped
        assert len(peers[0].pings) == 4
        assert len(pinger) == 1  # only p0's watch is kept
        peers_nursery.cancel_scope.cancel()
    for p in peers:
        await p.transport.aclose()
        await p.stream.aclose()


@pytest.mark.parametrize(("interval", "timeout"), [(0, 1), (1, 0), (-1, 1), (1, float("nan"))])
def test_settings_must_be_positive(interval: float, timeout: float) -> None:
    with pytest.raises(ValueError, match="must be > 0 seconds"):
        Keepalive(ping_interval=interval, pong_timeout=timeout)


@pytest.mark.e2e
async def test_the_server_closes_a_socket_whose_peer_went_silent(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A raw TCP peer opens the stream, sends ``start``, then neither sends nor answers
    anything (no FIN, no RST): the server pings, gives up after the pong timeout and closes
    the TCP connection without a closing handshake."""
    labels = {"flow": "/echo", "kind": "pong"}
    before = METRICS.registry.get_sample_value("callflow_liveness_timeouts_total", labels) or 0
    info = await start_server(keepalive=Keepalive(ping_interval=0.3, pong_timeout=0.3))
    proto = ClientProtocol(parse_uri(f"ws://127.0.0.1:{info.port}/echo/stream"))
    proto.send_request(proto.connect())
    stream = await trio.open_tcp_stream("127.0.0.1", info.port)
    async with stream:
        await stream.send_all(b"".join(proto.data_to_send()))
        while not proto.events_received():  # the 101 response
            proto.receive_data(await stream.receive_some())
        proto.send_text(start_message("call-silent").encode())
        await stream.send_all(b"".join(proto.data_to_send()))
        pings = 0
        with trio.fail_after(10):
            while data := await stream.receive_some():  # read, and never write again
                proto.receive_data(data)
                for event in proto.events_received():
                    if isinstance(event, Frame):
                        assert event.opcode is not Opcode.CLOSE  # no handshake, just gone
                        pings += event.opcode is Opcode.PING
        proto.data_to_send()  # the pongs websockets' client queued: never sent
    assert pings == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("peer silent: no pong within 0.3 s of a ping" in m for m in messages)
    after = METRICS.registry.get_sample_value("callflow_liveness_timeouts_total", labels)
    assert after == before + 1
