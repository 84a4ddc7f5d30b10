"""The load generator: N simulated Plivo calls over real WebSockets, in a process of its own.

One process runs one load run against one server and writes what it measured as JSON::

    python -m bench.loadgen --url ws://127.0.0.1:PORT/ivr/stream --calls 200 --mode ivr \\
        --server-pid PID --out run.json

Each call behaves as Plivo does (PROTOCOL.md §2, §3): it opens the WebSocket, sends ``start``
(μ-law 8 kHz), then an inbound ``media`` frame every 20 ms (160 bytes of μ-law, base64, the
exact shape :func:`callflow.protocol.encode_event` writes); it "plays" every ``playAudio`` at
real-time rate and acks each ``checkpoint`` with ``playedStream`` only once the audio queued
before it has played; it obeys ``clearAudio`` (drops the queue and the pending acks, answers
``clearedAudio``). In ``ivr`` mode the caller presses a key once per prompt, after hearing it
start: half the time 0.5-1.5 s into the prompt (a barge-in, answered by ``clearAudio``), else
0.2-0.5 s after the prompt has played out (answered by the next prompt's first ``playAudio``).
In ``bare`` mode it only sends media.

How it stays out of the way: a single pacer task sends every call's media from 20 slots of
1 ms, straight to non-blocking sockets (no task wake-up per frame), and client frames are
built from pre-split templates; one reader task per call parses what the server sends. The
pacer's own lateness is measured and reported, so a generator that cannot keep the cadence
shows up in the result instead of passing for a slow server.

Event-handling lag (the figure the capacity search uses): every 25th media frame (0.5 s) is
followed, in the same write, by a WebSocket ping; its lag is the time from sending it to
receiving the pong. Frames on one connection are handled in order, so the pong cannot leave
before the server has read every media frame sent before the ping: the lag is how far
behind real time the server's handling of that call runs (plus the loopback round trip).
Every key press is also a probe: its lag is the time until the reaction (``clearAudio`` or
the next prompt's audio) arrives, which also covers messages queued inside a server's
application layer. Only probes sent during the measurement window count.

Times are measured on one clock (trio's, seconds); the JSON reports milliseconds (``*_ms``),
seconds (``*_s``) and bytes.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import hashlib
import heapq
import json
import math
import os
import random
import resource
import socket
import struct
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import trio

from callflow.protocol import ExtraHeaders, Media, Start, encode_event

FRAME_S = 0.02
"""Plivo's inbound media cadence: one frame every 20 ms."""

SLOTS = 20
"""The pacer's 1 ms slots per 20 ms media period."""

FRAME_BYTES = 160
"""μ-law bytes per 20 ms frame (8 kHz)."""

BYTES_PER_S = 8000
"""μ-law 8 kHz: bytes of audio per second of playback."""

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0, 1, 2, 8, 9, 10
_MASK = os.urandom(4)
_MASK_INTS: dict[int, int] = {}
_EMPTY_HEADERS = ExtraHeaders.parse("{}")


def _mask_int(n: int) -> int:
    """The masking key repeated over ``n`` bytes, as a little-endian int (cached by length)."""
    value = _MASK_INTS.get(n)
    if value is None:
        value = _MASK_INTS[n] = int.from_bytes((_MASK * (n // 4 + 1))[:n], "little")
    return value


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame (RFC 6455 §5.2). The key is fixed per process: a server
    cannot tell, and masking stays off the generator's profile."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = (int.from_bytes(payload, "little") ^ _mask_int(n)).to_bytes(n, "little")
    return header + _MASK + masked


def _media_template() -> tuple[str, str, str, str, str]:
    """The text of a media event cut around its four varying fields (sequence number, stream
    id, timestamp, chunk), from callflow's own encoder, so the shape is Plivo's exactly."""
    silence = base64.b64encode(b"\xff" * FRAME_BYTES).decode()
    text = encode_event(
        Media(
            sequence_number=111111111,
            stream_id="SSSSSSSS",
            track="inbound",
            timestamp_ms=3333333333333,
            chunk=222222222,
            payload=silence,
            extra_headers=_EMPTY_HEADERS,
        )
    )
    a, rest = text.split("111111111", 1)
    b, rest = rest.split("SSSSSSSS", 1)
    c, rest = rest.split("3333333333333", 1)
    d, e = rest.split("222222222", 1)
    return a, b, c, d, e


_M0, _M1, _M2, _M3, _M4 = _media_template()


def _percentiles(values: list[float]) -> dict[str, float | int | None]:
    """count, p50, p90, p99, max of ``values`` (nearest rank), in the values' unit."""
    if not values:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(values)
    n = len(ordered)

    def rank(q: float) -> float:
        return ordered[min(n - 1, max(0, math.ceil(q * n) - 1))]

    return {
        "count": n,
        "p50": round(rank(0.50), 3),
        "p90": round(rank(0.90), 3),
        "p99": round(rank(0.99), 3),
        "max": round(ordered[-1], 3),
    }


def proc_sample(pids: str | int) -> dict[str, float]:
    """CPU seconds (user + system) and resident memory (bytes) of process ``pids`` (one pid,
    or several comma-separated, e.g. a supervisor and its workers: summed), from /proc."""
    total = {"cpu_s": 0.0, "rss_bytes": 0.0}
    for pid in filter(None, str(pids).split(",")):
        one = _proc_sample_one(int(pid))
        total["cpu_s"] += one["cpu_s"]
        total["rss_bytes"] += one["rss_bytes"]
    return total


def _proc_sample_one(pid: int) -> dict[str, float]:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15)
    rss = 0
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                rss = int(line.split()[1]) * 1024
                break
    return {"cpu_s": cpu, "rss_bytes": float(rss)}


def machine_busy_s() -> float:
    """CPU seconds all cores have spent busy since boot (everything but idle and iowait)."""
    with open("/proc/stat", "rb") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    steal = fields[7] if len(fields) > 7 else 0
    return (sum(fields[:8]) - idle - steal) / os.sysconf("SC_CLK_TCK")


class Generator:
    """Every simulated call of one run, the pacer that sends their media, and the results."""

    def __init__(self, args: argparse.Namespace) -> None:
        url = urlsplit(args.url)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 80
        self.path = url.path + (f"?{url.query}" if url.query else "")
        self.call_query: bool = bool(args.call_query)
        self.mode: str = args.mode
        self.ping_every: int = args.ping_every
        self.barge_fraction: float = args.barge_fraction
        self.rng = random.Random(args.seed)
        self.slots: list[list[SimCall]] = [[] for _ in range(SLOTS)]
        self.slot_index = 0
        self.heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self.heap_seq = 0
        self.nursery: trio.Nursery | None = None
        self.window_start = math.inf
        self.window_end = math.inf
        self.keys_enabled = True
        self.calls: list[SimCall] = []
        # results, in seconds until written out
        self.ping_lag: list[float] = []
        self.key_lag: list[float] = []
        self.barge: list[float] = []
        self.key_to_audio: list[float] = []
        self.ttfa: list[float] = []
        self.handshake: list[float] = []
        self.pacer_late: list[float] = []
        self.errors: dict[str, int] = {}
        self.media_sent = 0
        self.blocked_sends = 0

    # -- bookkeeping ------------------------------------------------------------------------

    def error(self, kind: str) -> None:
        """Count one failure of ``kind`` (connect, handshake, closed_by_server…)."""
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def in_window(self, t: float) -> bool:
        return self.window_start <= t < self.window_end

    def at(self, when: float, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` from the pacer at trio time ``when`` (seconds)."""
        self.heap_seq += 1
        heapq.heappush(self.heap, (when, self.heap_seq, fn, args))

    # -- the pacer --------------------------------------------------------------------------

    async def pacer(self) -> None:
        """Send each call's media in its 1 ms slot, and run timed actions (acks, key presses)."""
        clock = trio.current_time
        t0 = clock()
        j = 0
        heap = self.heap
        while True:
            now = clock()
            while t0 + j * 0.001 <= now:
                due = t0 + j * 0.001
                slot = self.slots[j % SLOTS]
                if slot:
                    if self.window_start <= due < self.window_end:
                        self.pacer_late.append(now - due)
                    stamp = str(int(time.time() * 1000))
                    for call in slot:
                        call.send_media(stamp)
                j += 1
            while heap and heap[0][0] <= now:
                _, _, fn, args = heapq.heappop(heap)
                fn(*args)
            wake = t0 + j * 0.001
            if heap and heap[0][0] < wake:
                wake = heap[0][0]
            await trio.sleep_until(wake)

    def add_to_pacer(self, call: SimCall) -> None:
        self.slots[(self.slot_index + 1) % SLOTS].append(call)
        self.slot_index += 1

    def remove_from_pacer(self, call: SimCall) -> None:
        for slot in self.slots:
            if call in slot:
                slot.remove(call)

    # -- calls ------------------------------------------------------------------------------

    async def connect(self, call_id: str) -> tuple[socket.socket, bytes]:
        """A connected socket after the WebSocket opening handshake, and the bytes that came
        after the server's response head.

        Raises:
            OSError: the TCP connect failed.
            ConnectionError: the handshake was refused or malformed.
        """
        path = self.path
        if self.call_query:
            path += f"{'&' if '?' in path else '?'}CallUUID={call_id}"
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            with contextlib.suppress(BlockingIOError):
                sock.connect((self.host, self.port))
            await trio.lowlevel.wait_writable(sock)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))
            key = base64.b64encode(os.urandom(16))
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n"
                "User-Agent: PlivoMS/1.0 (callflow bench)\r\n\r\n"
            ).encode()
            sock.send(request)
            buf = b""
            while b"\r\n\r\n" not in buf:
                await trio.lowlevel.wait_readable(sock)
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("closed during the handshake")
                buf += data
            head, rest = buf.split(b"\r\n\r\n", 1)
            lines = head.split(b"\r\n")
            if not lines[0].startswith(b"HTTP/1.1 101"):
                raise ConnectionError(f"handshake refused: {lines[0]!r}")
            accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())
            if not any(
                line.lower().startswith(b"sec-websocket-accept:")
                and line.split(b":", 1)[1].strip() == accept
                for line in lines[1:]
            ):
                raise ConnectionError("bad Sec-WebSocket-Accept")
            return sock, rest
        except BaseException:
            sock.close()
            raise

    async def run_call(self, index: int, done: trio.Event, *, measured: bool) -> None:
        """One call from dial to hang-up; ``done`` is set once it is streaming (or failed)."""
        began = trio.current_time()
        try:
            with trio.fail_after(10):
                call_id = str(uuid.uuid4())
                sock, rest = await self.connect(call_id)
        except (OSError, ConnectionError, trio.TooSlowError) as exc:
            self.error("handshake" if isinstance(exc, ConnectionError) else "connect")
            done.set()
            return
        if measured:
            self.handshake.append(trio.current_time() - began)
        call = SimCall(self, index, sock, measured=measured, call_id=call_id)
        self.calls.append(call)
        call.rbuf += rest
        call.start()
        done.set()
        await call.read_loop()


class SimCall:
    """Plivo's side of one call: media cadence, the playback queue, acks, the caller's keys."""

    def __init__(
        self,
        gen: Generator,
        index: int,
        sock: socket.socket,
        *,
        measured: bool,
        call_id: str | None = None,
    ) -> None:
        self.gen = gen
        self.index = index
        self.sock = sock
        self.measured = measured
        self.stream_id = str(uuid.uuid4())
        self.call_id = call_id or str(uuid.uuid4())
        self.rbuf = bytearray()
        self.fragments: list[bytes] = []
        self.fragment_op = 0
        self.outbuf = bytearray()
        self.flushing = False
        self.seq = 0
        self.chunk = 0
        self.frames = 0
        self.prefix = _M0
        self.middle = f"{_M1}{self.stream_id}{_M2}"
        self.pings: dict[int, float] = {}
        self.ping_id = 0
        self.final_ping: int | None = None
        self.final_pong = trio.Event()
        self.closed = trio.Event()
        self.hanging_up = False
        self.broken = False
        # Plivo's playback queue
        self.queue_end = 0.0
        self.epoch = 0
        # the IVR caller
        self.start_sent = 0.0
        self.first_audio: float | None = None
        self.state = "waiting"  # waiting | playing | barged | pressed | heard
        self.key_sent = 0.0
        self.key_epoch = 0
        self.key_done = trio.Event()
        self.key_done.set()

    # -- sending -----------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Write ``data`` now; what the socket does not take waits in order for a flusher."""
        if self.broken:
            return
        if self.outbuf:
            self.outbuf += data
            return
        try:
            n = self.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            self.broken = True
            return
        if n < len(data):
            self.outbuf += data[n:]
            self.gen.blocked_sends += 1
            if not self.flushing and self.gen.nursery is not None:
                self.flushing = True
                self.gen.nursery.start_soon(self.flush)

    async def flush(self) -> None:
        try:
            while self.outbuf and not self.broken:
                await trio.lowlevel.wait_writable(self.sock)
                try:
                    n = self.sock.send(self.outbuf)
                except BlockingIOError:
                    continue
                except OSError:
                    self.broken = True
                    return
                del self.outbuf[:n]
        finally:
            self.flushing = False

    def send_text(self, text: str) -> None:
        self.send(client_frame(_OP_TEXT, text.encode()))

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def start(self) -> None:
        """Send ``start`` and join the pacer's media cadence."""
        text = encode_event(
            Start(
                sequence_number=self.next_seq(),
                call_id=self.call_id,
                stream_id=self.stream_id,
                account_id="MABENCHACCOUNT000000",
                tracks=("inbound",),
                encoding="audio/x-mulaw",
                sample_rate=8000,
                extra_headers=_EMPTY_HEADERS,
            )
        )
        self.start_sent = trio.current_time()
        self.send_text(text)
        self.gen.add_to_pacer(self)

    def send_media(self, stamp: str) -> None:
        """One 20 ms media frame (and every ``ping_every`` frames a ping probe right after)."""
        self.seq += 1
        self.chunk += 1
        text = f"{self.prefix}{self.seq}{self.middle}{stamp}{_M3}{self.chunk}{_M4}"
        data = client_frame(_OP_TEXT, text.encode())
        self.frames += 1
        self.gen.media_sent += 1
        if self.frames % self.gen.ping_every == 0:
            self.ping_id += 1
            self.pings[self.ping_id] = trio.current_time()
            data += client_frame(_OP_PING, struct.pack("!Q", self.ping_id))
        self.send(data)

    def send_final_ping(self) -> None:
        """Stop media; ping once more: its pong proves the server read every frame sent."""
        self.gen.remove_from_pacer(self)
        self.ping_id += 1
        self.final_ping = self.ping_id
        self.pings[self.ping_id] = trio.current_time()
        self.send(client_frame(_OP_PING, struct.pack("!Q", self.ping_id)))

    def hang_up(self) -> None:
        """The caller hangs up: a close frame with 1000 (the server answers and closes)."""
        if self.hanging_up:
            return
        self.hanging_up = True
        self.gen.remove_from_pacer(self)
        self.send(client_frame(_OP_CLOSE, struct.pack("!H", 1000) + b"caller hung up"))

    # -- Plivo's playback ---------------------------------------------------------------------

    def on_play_audio(self, obj: dict[str, Any], now: float) -> None:
        media = obj.get("media") or {}
        payload = media.get("payload", "")
        if media.get("contentType") != "audio/x-mulaw" or media.get("sampleRate") != 8000:
            self.gen.error("bad_play_audio")
        raw = len(payload) // 4 * 3 - payload[-2:].count("=")
        self.queue_end = max(now, self.queue_end) + raw / BYTES_PER_S
        if self.first_audio is None:
            self.first_audio = now
            if self.measured:
                self.gen.ttfa.append(now - self.start_sent)
        if self.gen.mode != "ivr":
            return
        if self.state == "pressed":
            self.record_key(now, self.gen.key_to_audio)
            self.key_done.set()
        if self.state in ("waiting", "pressed"):
            self.state = "playing"
            self.key_epoch += 1
            if self.gen.keys_enabled and self.gen.rng.random() < self.gen.barge_fraction:
                delay = self.gen.rng.uniform(0.5, 1.5)
                self.gen.at(now + delay, self.press_key, self.key_epoch, True)

    def on_checkpoint(self, obj: dict[str, Any], now: float) -> None:
        name = obj.get("name", "")
        self.gen.at(max(now, self.queue_end), self.ack, self.epoch, name)

    def ack(self, epoch: int, name: str) -> None:
        if epoch != self.epoch or self.hanging_up:
            return  # cleared: Plivo never acks a cleared checkpoint
        text = json.dumps(
            {
                "sequenceNumber": self.next_seq(),
                "event": "playedStream",
                "streamId": self.stream_id,
                "name": name,
            },
            separators=(",", ":"),
        )
        self.send_text(text)
        now = trio.current_time()
        if self.gen.mode == "ivr" and self.state == "playing" and self.queue_end <= now + 1e-3:
            self.state = "heard"
            if self.gen.keys_enabled:
                delay = self.gen.rng.uniform(0.2, 0.5)
                self.gen.at(now + delay, self.press_key, self.key_epoch, False)

    def on_clear_audio(self, now: float) -> None:
        self.epoch += 1
        self.queue_end = now
        text = json.dumps(
            {
                "sequenceNumber": self.next_seq(),
                "event": "clearedAudio",
                "streamId": self.stream_id,
            },
            separators=(",", ":"),
        )
        self.send_text(text)
        if self.state == "barged":
            self.record_key(now, self.gen.barge)
            self.state = "waiting"
            self.key_done.set()

    # -- the caller's keys -------------------------------------------------------------------

    def press_key(self, key_epoch: int, barge: bool) -> None:
        if key_epoch != self.key_epoch or self.hanging_up or not self.gen.keys_enabled:
            return
        now = trio.current_time()
        if barge and (self.state != "playing" or self.queue_end < now + 0.05):
            return  # the prompt ended first: the after-prompt key comes from the last ack
        if not barge and self.state != "heard":
            return
        text = json.dumps(
            {
                "sequenceNumber": self.next_seq(),
                "event": "dtmf",
                "streamId": self.stream_id,
                "dtmf": {
                    "digit": "1",
                    "track": "inbound",
                    "timestamp": str(int(time.time() * 1000)),
                },
                "extra_headers": "{}",
            },
            separators=(",", ":"),
        )
        self.key_sent = now
        self.key_done = trio.Event()
        self.state = "barged" if barge else "pressed"
        self.send_text(text)

    def record_key(self, now: float, bucket: list[float]) -> None:
        if self.measured and self.gen.in_window(self.key_sent):
            lag = now - self.key_sent
            bucket.append(lag)
            self.gen.key_lag.append(lag)

    def pending_key(self) -> bool:
        """Whether a key press is still waiting for its reaction."""
        return self.state in ("barged", "pressed")

    # -- receiving -----------------------------------------------------------------------------

    async def read_loop(self) -> None:
        sock = self.sock
        try:
            self.parse()
            while not self.closed.is_set():
                await trio.lowlevel.wait_readable(sock)
                try:
                    data = sock.recv(262144)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    if not self.hanging_up:
                        self.gen.error("closed_by_server")
                    break
                self.rbuf += data
                self.parse()
        finally:
            self.closed.set()
            self.final_pong.set()
            self.key_done.set()
            self.gen.remove_from_pacer(self)
            self.broken = True
            sock.close()

    def parse(self) -> None:
        """Handle every complete frame in ``rbuf`` (server frames are not masked)."""
        buf = self.rbuf
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n = b1 & 0x7F
            head = 2
            if n == 126:
                if size - pos < 4:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif n == 127:
                if size - pos < 10:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            mask = b""
            if b1 & 0x80:
                mask = bytes(buf[pos + head : pos + head + 4])
                head += 4
            if size - pos < head + n:
                break
            payload = bytes(buf[pos + head : pos + head + n])
            if mask:
                key = int.from_bytes((mask * (n // 4 + 1))[:n], "little")
                payload = (int.from_bytes(payload, "little") ^ key).to_bytes(n, "little")
            pos += head + n
            self.on_frame(b0 & 0x0F, bool(b0 & 0x80), payload)
            if self.closed.is_set():
                break
        del buf[:pos]

    def on_frame(self, opcode: int, fin: bool, payload: bytes) -> None:
        if opcode in (_OP_TEXT, _OP_BINARY, _OP_CONT):
            if opcode != _OP_CONT:
                self.fragment_op = opcode
            self.fragments.append(payload)
            if fin:
                message = b"".join(self.fragments)
                self.fragments = []
                self.on_message(message)
        elif opcode == _OP_PONG and len(payload) == 8:
            ping = struct.unpack("!Q", payload)[0]
            sent = self.pings.pop(ping, None)
            now = trio.current_time()
            if sent is not None and self.measured and self.gen.in_window(sent):
                self.gen.ping_lag.append(now - sent)
            if ping == self.final_ping:
                self.final_pong.set()
        elif opcode == _OP_PING:
            self.send(client_frame(_OP_PONG, payload))
        elif opcode == _OP_CLOSE:
            if not self.hanging_up:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.gen.error(f"closed_by_server_{code}")
                self.hanging_up = True
                self.send(client_frame(_OP_CLOSE, payload[:2]))
            self.closed.set()

    def on_message(self, message: bytes) -> None:
        now = trio.current_time()
        try:
            obj = json.loads(message)
            event = obj["event"]
        except (ValueError, KeyError, TypeError):
            self.gen.error("unreadable_message")
            return
        if event == "playAudio":
            self.on_play_audio(obj, now)
        elif event == "checkpoint":
            self.on_checkpoint(obj, now)
        elif event == "clearAudio":
            self.on_clear_audio(now)
        elif event != "sendDTMF":
            self.gen.error("unknown_command")


async def _ramp(
    gen: Generator, nursery: trio.Nursery, count: int, rate: float, *, measured: bool
) -> list[trio.Event]:
    """Start ``count`` calls at ``rate`` calls per second; the events say each is streaming."""
    started = trio.current_time()
    events = []
    for i in range(count):
        done = trio.Event()
        events.append(done)
        nursery.start_soon(functools.partial(gen.run_call, i, done, measured=measured))
        await trio.sleep_until(started + (i + 1) / rate)
    return events


async def _wait_all(events: list[trio.Event]) -> None:
    for event in events:
        await event.wait()


async def _hang_up_all(calls: list[SimCall], grace_s: float) -> int:
    """Hang every call up; the number that did not see the server close in ``grace_s``."""
    for call in calls:
        call.hang_up()
    with trio.move_on_after(grace_s):
        for call in calls:
            await call.closed.wait()
    stuck = 0
    for call in calls:
        if not call.closed.is_set():
            stuck += 1
            call.closed.set()
            call.sock.close()
    return stuck


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """One load run; the result as a JSON-able dict (see the module docstring)."""
    gen = Generator(args)
    server = args.server_pid
    result: dict[str, Any] = {"calls": args.calls, "mode": args.mode, "url": args.url}
    cpu_self0 = resource.getrusage(resource.RUSAGE_SELF)
    async with trio.open_nursery() as nursery:
        gen.nursery = nursery
        nursery.start_soon(gen.pacer)
        # warm-up: a few calls go through the whole path once (imports, caches, code paths)
        warm = await _ramp(gen, nursery, args.warmup_calls, 50.0, measured=False)
        with trio.move_on_after(10):
            await _wait_all(warm)
        await trio.sleep(args.warmup_s)
        warm_calls = list(gen.calls)
        await _hang_up_all(warm_calls, 5)
        gen.calls.clear()
        await trio.sleep(0.5)
        base = proc_sample(server) if server else None
        # ramp
        ramp_began = trio.current_time()
        events = await _ramp(gen, nursery, args.calls, args.ramp_rate, measured=True)
        ramp_ok = False
        with trio.move_on_after(15):
            await _wait_all(events)
            ramp_ok = True
        result["ramp_s"] = round(trio.current_time() - ramp_began, 3)
        result["ramp_complete"] = ramp_ok
        await trio.sleep(args.settle_s)
        # the measurement window
        gen.window_start = trio.current_time()
        cpu0 = proc_sample(server) if server else None
        self0 = resource.getrusage(resource.RUSAGE_SELF)
        busy0 = machine_busy_s()
        await trio.sleep(args.window_s)
        gen.window_end = trio.current_time()
        cpu1 = proc_sample(server) if server else None
        self1 = resource.getrusage(resource.RUSAGE_SELF)
        busy1 = machine_busy_s()
        live = [c for c in gen.calls if not c.closed.is_set()]
        result["live_calls_at_window_end"] = len(live)
        # no new keys; the reactions to keys already pressed get up to 5 s to arrive
        gen.keys_enabled = False
        with trio.move_on_after(5):
            for call in live:
                await call.key_done.wait()
        unanswered_keys = sum(1 for c in live if c.pending_key() and gen.in_window(c.key_sent))
        # idle tail: every prompt plays out; the flows wait for a key
        idle = None
        if args.idle_tail_s > 0:
            await trio.sleep(args.idle_tail_s)
            idle = proc_sample(server) if server else None
        # every frame read? a last ping per call, after its last media frame
        calls = [c for c in gen.calls if not c.closed.is_set()]
        for call in calls:
            call.send_final_ping()
        with trio.move_on_after(args.final_timeout_s):
            for call in calls:
                await call.final_pong.wait()
        unread = sum(1 for c in calls if c.final_ping in c.pings)
        unanswered_pings = sum(
            1 for c in calls for p, t in c.pings.items() if p != c.final_ping and gen.in_window(t)
        )
        stuck = await _hang_up_all(gen.calls, 5)
        nursery.cancel_scope.cancel()
    cpu_self1 = resource.getrusage(resource.RUSAGE_SELF)

    window = gen.window_end - gen.window_start
    ms = 1000.0
    gen_cpu = self1.ru_utime + self1.ru_stime - self0.ru_utime - self0.ru_stime
    server_cpu = cpu1["cpu_s"] - cpu0["cpu_s"] if cpu0 and cpu1 else 0.0
    result.update(
        {
            "window_s": round(window, 3),
            "errors": gen.errors,
            "calls_streaming": len(gen.calls),
            "unread_at_end": unread,
            "unanswered_pings": unanswered_pings,
            "unanswered_keys": unanswered_keys,
            "not_closed": stuck,
            "media_sent": gen.media_sent,
            "blocked_sends": gen.blocked_sends,
            "ping_lag_ms": _percentiles([x * ms for x in gen.ping_lag]),
            "key_lag_ms": _percentiles([x * ms for x in gen.key_lag]),
            "lag_ms": _percentiles([x * ms for x in gen.ping_lag + gen.key_lag]),
            "barge_in_ms": _percentiles([x * ms for x in gen.barge]),
            "key_to_audio_ms": _percentiles([x * ms for x in gen.key_to_audio]),
            "ttfa_ms": _percentiles([x * ms for x in gen.ttfa]),
            "handshake_ms": _percentiles([x * ms for x in gen.handshake]),
            "pacer_late_ms": _percentiles([x * ms for x in gen.pacer_late]),
            "generator_cpu_window_s": round(gen_cpu, 3),
            "other_cpu_window_s": round(busy1 - busy0 - gen_cpu - server_cpu, 3),
            "generator_cpu_total_s": round(
                cpu_self1.ru_utime + cpu_self1.ru_stime - cpu_self0.ru_utime - cpu_self0.ru_stime,
                3,
            ),
        }
    )
    if base and cpu0 and cpu1:
        result["server"] = {
            "cpu_window_s": round(server_cpu, 3),
            "rss_base_bytes": base["rss_bytes"],
            "rss_window_start_bytes": cpu0["rss_bytes"],
            "rss_window_end_bytes": cpu1["rss_bytes"],
            "rss_idle_bytes": idle["rss_bytes"] if idle else None,
        }
    return result


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/path of the stream")
    p.add_argument("--calls", type=int, required=True, help="concurrent calls N")
    p.add_argument("--mode", choices=["ivr", "bare"], default="ivr")
    p.add_argument(
        "--call-query",
        type=int,
        default=0,
        help="1: each stream URL names its call (?CallUUID=…), as callflow's URLs do",
    )
    p.add_argument(
        "--server-pid",
        default="",
        help="sample this process's CPU/RSS (several comma-separated pids are summed)",
    )
    p.add_argument("--ramp-rate", type=float, default=100.0, help="new calls per second")
    p.add_argument("--warmup-calls", type=int, default=5)
    p.add_argument("--warmup-s", type=float, default=1.5)
    p.add_argument("--settle-s", type=float, default=1.0, help="after the ramp, before measuring")
    p.add_argument("--window-s", type=float, default=8.0, help="measurement window (seconds)")
    p.add_argument("--idle-tail-s", type=float, default=0.0, help="idle phase for the RSS sample")
    p.add_argument("--final-timeout-s", type=float, default=5.0)
    p.add_argument("--ping-every", type=int, default=25, help="media frames per ping probe")
    p.add_argument("--barge-fraction", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    p.add_argument("--out", default="-", help="JSON result file ('-' for stdout)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = trio.run(run, args)
    text = json.dumps(result, indent=1)
    if args.out == "-":
        sys.stdout.write(text + "\n")
    else:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
