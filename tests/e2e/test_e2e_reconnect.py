"""A stream socket cut for real (a TCP reset: SO_LINGER 0, no close frame) on the real server
on 127.0.0.1, and reopened with the same URL, as Plivo retries it (docs/reconnect.md).

The Plivo side is the ``websockets`` library's sync client in a worker thread, playing
callflow's audio in real time and recording what the caller heard, byte for byte.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import socket
import struct
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar
from xml.etree import ElementTree

import httpx
import numpy as np
import pytest
import trio
from e2ekit import AUTH_TOKEN
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from callflow import Call, CallEnded, Format, RuntimeConfig, flow
from callflow.audio import Audio, beep, chunk_bytes
from callflow.server import ServerInfo, _streams, serve_flows, signature_v3

pytestmark = pytest.mark.e2e

T = TypeVar("T")
FMT = Format.MULAW_8K
RATE = 8000
PROMPT = Audio(np.random.default_rng(3).integers(-8000, 8000, 3 * RATE, dtype=np.int16), RATE)
"""3 s of noise: a gap, a repeat or a shift in what the caller hears shows."""
MENU = beep(0.4, freq_hz=500, rate=RATE)
CHOICE = beep(0.5, freq_hz=660, rate=RATE)
CHUNK = chunk_bytes(FMT)
WAIT = 15.0
ENDED: list[str] = []
"""``CallEnded.reason`` of each call whose flow saw one (the flow runs on the test's loop)."""
ENDED_EVENT = [trio.Event()]


def wire(audio: Audio) -> bytes:
    """``audio`` as callflow sends it: μ-law bytes."""
    return audio.encoded(FMT)


@flow("/reconnect", format=FMT)
async def reconnecting(call: Call) -> None:
    try:
        await call.say(PROMPT)  # no barge-in: a key pressed now waits for the menu
        choice = await call.menu(MENU, {"1": "one", "2": "two"}, timeout=5.0)
        if choice == "two":
            await call.say(CHOICE)
    except CallEnded as exc:
        ENDED.append(exc.reason)
        ENDED_EVENT[0].set()
        raise


async def outside(scenario: Callable[..., T], *args: Any) -> T:
    with trio.fail_after(60):
        return await trio.to_thread.run_sync(
            functools.partial(scenario, *args), abandon_on_cancel=True
        )


def stream_url(info: ServerInfo, call_id: str) -> str:
    """The ``<Stream>`` URL of a signed answer for ``call_id``."""
    url = f"{info.url}/reconnect"
    params = {"CallUUID": call_id, "From": "1555", "To": "1666", "Direction": "inbound"}
    nonce = str(uuid.uuid4().int)[:20]
    signature = signature_v3(
        AUTH_TOKEN, method="POST", url=url, params={k: [v] for k, v in params.items()}, nonce=nonce
    )
    headers = {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": nonce}
    response = httpx.post(url, data=params, headers=headers, timeout=WAIT)
    assert response.status_code == 200, response.text
    stream = ElementTree.fromstring(response.content).find("Stream")
    assert stream is not None
    return (stream.text or "").strip()


class Plivo:
    """Plivo's side of one call over several connections to one stream URL: plays what
    callflow sends in real time, acks checkpoints when reached, records what was heard."""

    def __init__(self, url: str, call_id: str) -> None:
        self.url = url
        self.call_id = call_id
        self.heard = bytearray()  # what played on connections already closed
        self.close_code: int | None = None
        self._seq = 0

    def connect(self) -> None:
        # no keepalive pings: their thread would outlive a cut connection (and call random)
        self.ws: ClientConnection = connect(
            self.url, open_timeout=WAIT, close_timeout=2, ping_interval=None
        )
        self.ws.__enter__()  # left by run() or cut()
        self.stream_id = str(uuid.uuid4())
        self.pieces: list[tuple[float, bytes]] = []  # (starts playing at, audio)
        self.pending: list[tuple[float, str]] = []  # (ack at, checkpoint)
        self.queue_end = 0.0
        self.close_code = None
        self._next_media = 0.0
        try:
            self.send({"event": "start", "start": {
                "callId": self.call_id, "streamId": self.stream_id, "accountId": "MA00",
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": RATE},
            }, "extra_headers": "{}"})  # fmt: skip
        except ConnectionClosed as closed:  # refused at once: run() reads the close code
            self.close_code = closed.rcvd.code if closed.rcvd is not None else 1006

    def send(self, message: dict[str, Any]) -> None:
        self._seq += 1
        self.ws.send(json.dumps({"sequenceNumber": self._seq, **message}))

    def press(self, digit: str) -> None:
        ms = str(int(time.time() * 1000))
        self.send({"event": "dtmf", "streamId": self.stream_id,
                   "dtmf": {"digit": digit, "track": "inbound", "timestamp": ms}})  # fmt: skip

    def played(self, now: float) -> bytes:
        """What this connection has played by ``now``."""
        out = bytearray()
        for start, raw in self.pieces:
            out += raw[: max(0, min(len(raw), int((now - start) * RATE)))]
        return bytes(out)

    def run(self, seconds: float | None = None) -> None:
        """Play for ``seconds``, or until callflow closes the stream."""
        deadline = time.monotonic() + (seconds if seconds is not None else WAIT)
        while self.close_code is None:
            now = time.monotonic()
            if now >= deadline:
                assert seconds is not None, "callflow did not end the call in time"
                return
            for item in [p for p in self.pending if p[0] <= now]:
                self.pending.remove(item)
                self.send({"event": "playedStream", "streamId": self.stream_id, "name": item[1]})
            if now >= self._next_media:
                self._next_media = now + 0.02
                payload = base64.b64encode(b"\xff" * 160).decode()
                ms = str(int(time.time() * 1000))
                self.send({"event": "media", "streamId": self.stream_id,
                           "media": {"track": "inbound", "payload": payload,
                                     "timestamp": ms, "chunk": 1}})  # fmt: skip
            try:
                message = json.loads(self.ws.recv(timeout=0.005))
            except TimeoutError:
                continue
            except ConnectionClosed as closed:
                self.close_code = closed.rcvd.code if closed.rcvd is not None else 1006
                self.ws.__exit__(None, None, None)
                break
            now = time.monotonic()
            if message["event"] == "playAudio":
                raw = base64.b64decode(message["media"]["payload"])
                start = max(self.queue_end, now)
                self.pieces.append((start, raw))
                self.queue_end = start + len(raw) / RATE
            elif message["event"] == "checkpoint":
                self.pending.append((max(self.queue_end, now), message["name"]))
        self.heard += self.played(self.queue_end + 1)  # all of it (callflow drains first)

    def cut(self) -> int:
        """Reset the TCP connection (no close frame); the bytes heard up to now."""
        self.heard += self.played(time.monotonic())
        sock = self.ws.socket
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        with contextlib.suppress(OSError, ConnectionClosed):
            self.ws.__exit__(None, None, None)  # ends the client's reader thread
        return len(self.heard)


def resumed_at(heard: bytes, cut: int) -> int:
    """Where in the prompt playback resumed after the caller heard ``prompt[:cut]``: at most
    one chunk before the cut (callflow re-sends from the last acknowledged checkpoint), never
    after it."""
    prompt = wire(PROMPT)
    assert heard[:cut] == prompt[:cut]
    for start in range(cut, max(-1, cut - CHUNK - 1), -1):
        if heard[cut : cut + len(prompt) - start] == prompt[start:]:
            return start
    raise AssertionError("the caller did not hear the rest of the prompt after the reconnect")


def messages(caplog: pytest.LogCaptureFixture, word: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if word in r.getMessage()]


async def serve(nursery: trio.Nursery, config: RuntimeConfig | None = None) -> ServerInfo:
    """A server for the reconnecting flow, with a fresh record of ended calls."""
    ENDED.clear()
    ENDED_EVENT[0] = trio.Event()
    info: ServerInfo = await nursery.start(
        functools.partial(
            serve_flows,
            [reconnecting],
            host="127.0.0.1",
            port=0,
            auth_token=AUTH_TOKEN,
            drain_timeout=1.0,
            config=config,
        )
    )
    return info


async def test_a_reset_mid_prompt_and_a_reconnect_two_seconds_later_resume_the_call(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="callflow")
    info = await serve(nursery)
    call_id = str(uuid.uuid4())

    def scenario() -> tuple[Plivo, int]:
        plivo = Plivo(stream_url(info, call_id), call_id)
        plivo.connect()
        plivo.run(0.5)
        plivo.press("2")  # before the cut: it must still move the menu on
        plivo.run(1.3)  # past the first checkpoint (1.52 s of audio)
        cut = plivo.cut()
        time.sleep(2.0)
        plivo.connect()  # the same URL, as Plivo retries
        plivo.run()
        return plivo, cut

    plivo, cut = await outside(scenario)
    assert plivo.close_code == 1000
    prompt = wire(PROMPT)
    assert 1.6 * RATE < cut < 2.4 * RATE
    resumed = resumed_at(bytes(plivo.heard), cut)
    assert resumed == CHUNK  # the first chunk's checkpoint was the last acknowledged
    assert bytes(plivo.heard[cut + len(prompt) - resumed :]) == wire(CHOICE)
    assert ENDED == []  # the flow ended normally, never saw CallEnded
    (detached,) = messages(caplog, "detached:")
    assert call_id in detached
    assert "code 1006" in detached
    (reattached,) = messages(caplog, "re-attached after")
    assert call_id in reattached
    assert "re-sent" in reattached
    with trio.fail_after(5):  # logged once the socket's close handshake is done
        while not messages(caplog, f"call={call_id} ended:"):  # noqa: ASYNC110 (a log line)
            await trio.sleep(0.02)
    (ended,) = messages(caplog, f"call={call_id} ended:")
    assert "flow finished" in ended


async def test_a_reset_with_no_reconnect_ends_the_call_after_the_window(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    info = await serve(nursery, RuntimeConfig(reconnect_grace_s=1.5))
    call_id = str(uuid.uuid4())

    def scenario() -> float:
        plivo = Plivo(stream_url(info, call_id), call_id)
        plivo.connect()
        plivo.run(1.0)
        plivo.cut()
        return time.monotonic()

    cut_at = await outside(scenario)
    with trio.fail_after(10):
        await ENDED_EVENT[0].wait()
    assert 1.3 < time.monotonic() - cut_at < 3.0
    assert ENDED == ["stream lost: no reconnect within 1.5 s"]
    assert len(messages(caplog, "no reconnect within")) == 1


async def test_a_retry_ten_minutes_into_the_call_is_accepted_and_one_after_it_ended_refused(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = await serve(nursery)
    call_id = str(uuid.uuid4())

    def scenario() -> tuple[Plivo, int | None, int]:
        plivo = Plivo(stream_url(info, call_id), call_id)
        plivo.connect()
        plivo.run(0.5)
        plivo.press("2")
        plivo.run(0.5)
        plivo.cut()
        # the token's 300 s are long gone by the server's clock: still accepted, live call
        monkeypatch.setattr(_streams, "wall_clock", lambda: time.time() + 600)
        plivo.connect()
        plivo.run()
        # the call has ended: the same URL is refused, with the token still fresh (1008
        # after the handshake) and with it expired (HTTP 403 to the upgrade)
        monkeypatch.setattr(_streams, "wall_clock", time.time)
        plivo.connect()
        plivo.run()
        fresh = plivo.close_code
        monkeypatch.setattr(_streams, "wall_clock", lambda: time.time() + 600)
        try:
            plivo.connect()
        except InvalidStatus as refused:
            return plivo, fresh, refused.response.status_code
        raise AssertionError("a stream for an ended call with an expired token was accepted")

    plivo, fresh, expired = await outside(scenario)
    assert fresh == 1008
    assert expired == 403
    assert ENDED == []
    assert len(plivo.heard) >= len(wire(PROMPT)) + len(wire(CHOICE)) - CHUNK


async def test_a_second_socket_while_the_first_is_open_takes_the_call_over(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    """Plivo retrying while callflow still sees the old socket open (a half-open TCP
    connection): the new stream takes the call over. The old socket is being read with no
    reader task at that point (the read loop dispatches for it): letting it go must start a
    task for the new one, and close the old one."""
    caplog.set_level(logging.INFO, logger="callflow")
    info = await serve(nursery)
    call_id = str(uuid.uuid4())

    def scenario() -> tuple[Plivo, Plivo]:
        url = stream_url(info, call_id)
        old, new = Plivo(url, call_id), Plivo(url, call_id)
        old.connect()
        old.run(1.0)
        new.connect()  # the old socket still open
        old.run(3.0)  # until callflow closes it
        new.press("2")
        new.run()
        return old, new

    old, new = await outside(scenario)
    assert old.close_code == 1000
    assert new.close_code == 1000
    assert ENDED == []  # the flow went on on the new socket and ended normally
    assert len(messages(caplog, "takes over from the one still open")) == 1
    assert new.heard.endswith(wire(CHOICE))  # the key on the new socket moved the menu on
