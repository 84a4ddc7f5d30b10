"""Issue 2's conformance rules, checked from the outside.

The real server (``serve_flows`` with every flow in flows/, on 127.0.0.1 port 0) is called by
a Plivo side that uses none of callflow's code: answer webhooks signed with the ``plivo``
package's own Signature V3 functions and sent with httpx; the stream spoken with the
``websockets`` library's sync client, message by message as PROTOCOL.md writes them. Each
scenario is a plain function run in a worker thread (the server runs on this test's trio
loop); every wait in it is bounded, and ``trio.fail_after`` bounds the whole.

Every message callflow sends is checked as it arrives (:meth:`PlivoSide.check`): a text frame
of valid JSON, at most 64 KB, one of the four commands; ``playAudio`` in the flow's declared
format with a base64 payload of whole raw samples (no WAV header) of at most 16 KB;
``checkpoint`` and ``clearAudio`` carrying the stream id; checkpoint names unique per stream.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import time
import uuid
import wave
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode
from xml.etree import ElementTree

import httpx
import pytest
import trio
from e2ekit import AUTH_TOKEN, FLOWS, ServeBundled
from plivo.utils.signature_v3 import construct_get_url, construct_post_url, get_signature_v3
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from callflow import Call, Format, flow
from callflow.server import ServerInfo

pytestmark = pytest.mark.e2e

T = TypeVar("T")

FLOW_FORMATS = {
    "/support": "audio/x-mulaw;rate=8000",
    "/bank": "audio/x-l16;rate=8000",
    "/echo": "audio/x-l16;rate=16000",
}
"""Each bundled flow's answer path and the ``contentType`` its module declares."""

WIRE = {  # contentType in the XML -> (playAudio contentType, sampleRate, bytes per sample)
    "audio/x-mulaw;rate=8000": ("audio/x-mulaw", 8000, 1),
    "audio/x-l16;rate=8000": ("audio/x-l16", 8000, 2),
    "audio/x-l16;rate=16000": ("audio/x-l16", 16000, 2),
}
COMMANDS = {"playAudio", "checkpoint", "clearAudio", "sendDTMF"}
MAX_MESSAGE = 65536
MAX_PAYLOAD_B64 = 16384
SPEED = 4.0
"""The fake plays audio this many times faster than real time (the server only sees the
checkpoint acks), so a call through three prompts takes a couple of seconds."""
WAIT = 10.0
"""Seconds any one step of a scenario may take."""
PROMPTS = FLOWS / "prompts"


def seconds_of(wav: Path) -> float:
    with wave.open(str(wav)) as audio:
        return audio.getnframes() / audio.getframerate()


SCENARIO_TIMEOUT = 60.0
"""Seconds a whole scenario may take."""


async def outside(scenario: Callable[..., T], *args: Any) -> T:
    """Run the blocking ``scenario(*args)`` (the Plivo side) in a worker thread, for at most
    :data:`SCENARIO_TIMEOUT` seconds."""
    with trio.fail_after(SCENARIO_TIMEOUT):
        return await trio.to_thread.run_sync(
            functools.partial(scenario, *args), abandon_on_cancel=True
        )


# -- HTTP: Plivo's answer webhook, signed by Plivo's own code -------------------------------------


def plivo_signature(method: str, url: str, params: Mapping[str, str], nonce: str) -> str:
    """``X-Plivo-Signature-V3`` as the ``plivo`` package computes it (PROTOCOL.md §7)."""
    if method == "GET":
        base = construct_get_url(url, dict(params))
    else:
        base = construct_post_url(url, dict(params))
    signature: bytes = get_signature_v3(AUTH_TOKEN.encode(), base.decode(), nonce.encode())
    return signature.decode()


def post_answer(
    info: ServerInfo,
    path: str,
    params: Mapping[str, str],
    *,
    method: str = "POST",
    signed_url: str | None = None,
    signature: str | None = None,
) -> httpx.Response:
    """Call the answer webhook at ``path`` as Plivo does: form params (POST) or query (GET),
    signed for ``signed_url`` (default: the URL called), or with ``signature`` as given."""
    url = info.url + path
    if method == "GET":
        url += "?" + urlencode(params)
    nonce = str(uuid.uuid4().int)[:20]
    body = {} if method == "GET" else params
    if signature is None:
        signature = plivo_signature(method, signed_url or url, body, nonce)
    headers = {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": nonce}
    with httpx.Client(timeout=WAIT) as client:
        if method == "GET":
            return client.get(url, headers=headers)
        return client.post(url, data=dict(params), headers=headers)


def answer_params(call_id: str) -> dict[str, str]:
    return {
        "CallUUID": call_id,
        "From": "15550001111",
        "To": "15550002222",
        "Direction": "inbound",
        "CallStatus": "in-progress",
    }


def answer(
    info: ServerInfo, path: str, call_id: str, method: str = "POST", content_type: str = ""
) -> ElementTree.Element:
    """The ``<Stream>`` element of a signed answer, checked: 200, XML, and the contentType the
    flow declares (``content_type``, default :data:`FLOW_FORMATS`)."""
    response = post_answer(info, path, answer_params(call_id), method=method)
    assert response.status_code == 200, response.text
    assert "xml" in response.headers["content-type"]
    root = ElementTree.fromstring(response.content)
    assert root.tag == "Response"
    stream = root.find("Stream")
    assert stream is not None, response.text
    assert stream.get("contentType") == (content_type or FLOW_FORMATS[path])
    assert stream.get("bidirectional") == "true"
    assert (stream.text or "").startswith(f"ws://127.0.0.1:{info.port}{path}/stream?")
    return stream


# -- the stream: Plivo's side, from PROTOCOL.md --------------------------------------------------


class PlivoSide:
    """Plivo's side of one stream, written from PROTOCOL.md §2-§4.

    Sends ``start`` in the answer's ``contentType``, 20 ms of inbound silence every 20 ms, and
    key presses; plays each ``playAudio`` :data:`SPEED` times faster than real time and acks a
    ``checkpoint`` (``playedStream``) once the audio queued before it has played; on
    ``clearAudio`` drops what is queued (those checkpoints are never acked) and answers
    ``clearedAudio``. Every message from callflow goes through :meth:`check`.

    Use it as a context manager: entering connects to the ``<Stream>`` URL, leaving closes.

    Attributes:
        sent_s / played_s: seconds of audio received / played since the last ``clearAudio``.
        clears: ``clearAudio`` messages obeyed.
        close_code: callflow's close code once the stream has closed.
    """

    def __init__(self, stream: ElementTree.Element, call_id: str) -> None:
        self.url = stream.text or ""
        self.encoding, self.rate, self.width = WIRE[stream.get("contentType", "")]
        self.call_id = call_id
        self.stream_id = f"stream-{call_id}"
        self._exit = contextlib.ExitStack()
        self.received: list[dict[str, Any]] = []
        self.names: set[str] = set()
        self.pending: list[tuple[float, str, float]] = []  # (ack at, checkpoint, played_s then)
        self.queue_end = 0.0
        self.sent_s = self.played_s = 0.0
        self.clears = 0
        self.close_code: int | None = None
        self._seq = 0
        self._chunk = 0
        self._next_media = 0.0

    def __enter__(self) -> PlivoSide:
        self.ws: ClientConnection = self._exit.enter_context(
            connect(self.url, open_timeout=WAIT, close_timeout=2, max_size=None)
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit.close()

    # what Plivo sends

    def send(self, message: dict[str, Any] | str | bytes) -> None:
        """Send one frame (nothing once callflow has closed the stream)."""
        if self.close_code is not None:
            return
        if isinstance(message, dict):
            self._seq += 1
            message = json.dumps({"sequenceNumber": self._seq, **message})
        self.ws.send(message)

    def start(self) -> None:
        self.send(
            {
                "event": "start",
                "start": {
                    "callId": self.call_id,
                    "streamId": self.stream_id,
                    "accountId": "MA0000000000000000",
                    "tracks": ["inbound"],
                    "mediaFormat": {"encoding": self.encoding, "sampleRate": self.rate},
                },
                "extra_headers": "{}",
            }
        )

    def media(self, payload: str | None = None) -> dict[str, Any]:
        """A ``media`` event: 20 ms of silence, or ``payload`` as given."""
        if payload is None:
            silence = b"\xff" if self.encoding == "audio/x-mulaw" else b"\x00"
            payload = base64.b64encode(silence * (self.rate // 50 * self.width)).decode()
        self._chunk += 1
        return {
            "event": "media",
            "streamId": self.stream_id,
            "media": {
                "track": "inbound",
                "timestamp": str(int(time.time() * 1000)),
                "chunk": self._chunk,
                "payload": payload,
            },
            "extra_headers": "{}",
        }

    def press(self, digit: str) -> None:
        self.send(
            {
                "event": "dtmf",
                "streamId": self.stream_id,
                "dtmf": {
                    "digit": digit,
                    "track": "inbound",
                    "timestamp": str(int(time.time() * 1000)),
                },
                "extra_headers": "{}",
            }
        )

    # what callflow sends

    def check(self, frame: str | bytes) -> dict[str, Any]:
        """``frame`` as a command, asserting every rule of the module docstring."""
        assert isinstance(frame, str), f"binary frame from callflow: {frame[:60]!r}"
        assert len(frame.encode()) <= MAX_MESSAGE, f"message of {len(frame.encode())} bytes"
        message = json.loads(frame)
        assert isinstance(message, dict), frame[:200]
        event = message.get("event")
        assert event in COMMANDS, f"unknown command: {frame[:200]}"
        if event == "playAudio":
            media = message["media"]
            assert media["contentType"] == self.encoding, frame[:200]
            assert media["sampleRate"] == self.rate, frame[:200]
            assert len(media["payload"]) <= MAX_PAYLOAD_B64
            raw = base64.b64decode(media["payload"], validate=True)
            assert raw, "empty playAudio"
            assert len(raw) % self.width == 0, f"{len(raw)} bytes is not whole samples"
            assert not raw.startswith(b"RIFF"), "a WAV header in the payload"
            assert message.get("streamId", self.stream_id) == self.stream_id
        elif event == "checkpoint":
            assert message["streamId"] == self.stream_id, frame
            name = message["name"]
            assert isinstance(name, str), frame
            assert name, frame
            assert name not in self.names, f"checkpoint name {name!r} used twice"
            self.names.add(name)
        elif event == "clearAudio":
            assert message == {"event": "clearAudio", "streamId": self.stream_id}, frame
        else:
            digits = message["dtmf"]
            assert digits, frame
            assert set(digits) <= set("0123456789*#ABCD"), frame
        return message

    def _obey(self, message: dict[str, Any]) -> None:
        now = time.monotonic()
        event = message["event"]
        if event == "playAudio":
            raw = base64.b64decode(message["media"]["payload"])
            seconds = len(raw) / self.width / self.rate
            self.queue_end = max(self.queue_end, now) + seconds / SPEED
            self.sent_s += seconds
        elif event == "checkpoint":
            self.pending.append((max(self.queue_end, now), message["name"], self.sent_s))
        elif event == "clearAudio":
            self.clears += 1
            self.pending.clear()
            self.queue_end = now
            self.sent_s = self.played_s = 0.0
            self.send({"event": "clearedAudio", "streamId": self.stream_id})

    def run(self, until: Callable[[], bool], timeout: float = WAIT) -> None:
        """Play the call until ``until()`` holds or callflow closes the stream; fail after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not until() and self.close_code is None:
            now = time.monotonic()
            assert now < deadline, f"call {self.call_id}: condition not met in {timeout} s"
            try:
                for item in [p for p in self.pending if p[0] <= now]:
                    self.pending.remove(item)
                    self.played_s = item[2]
                    played = {"event": "playedStream", "streamId": self.stream_id, "name": item[1]}
                    self.send(played)
                if now >= self._next_media:
                    self._next_media = now + 0.02
                    self.send(self.media())
                message = self.check(self.ws.recv(timeout=0.01))
                self.received.append(message)
                self._obey(message)
            except TimeoutError:
                continue
            except ConnectionClosed as closed:  # seen by a send or by the receive
                # 1006 (no close frame) fails the caller's check of the code
                self.close_code = closed.rcvd.code if closed.rcvd is not None else 1006
                self._drain()

    def _drain(self) -> None:
        """Take the messages that arrived before the close (a send may see it first)."""
        while True:
            try:
                message = self.check(self.ws.recv(timeout=WAIT))
            except ConnectionClosed:
                return
            self.received.append(message)
            self._obey(message)

    def hung_up(self, timeout: float = WAIT) -> int:
        """Play until callflow closes the stream; its close code."""
        self.run(lambda: self.close_code is not None, timeout)
        assert self.close_code is not None
        return self.close_code

    def idle(self) -> bool:
        """All audio sent so far has played, and the flow is waiting."""
        return not self.pending and time.monotonic() >= self.queue_end


def open_stream(info: ServerInfo, path: str, method: str = "POST") -> PlivoSide:
    call_id = f"{path.strip('/')}-{method.lower()}-{uuid.uuid4().hex[:8]}"
    return PlivoSide(answer(info, path, call_id, method), call_id)


# -- the tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_each_answer_gives_its_flows_stream_and_valid_messages(
    server: ServerInfo, method: str
) -> None:
    def scenario() -> None:
        for path in FLOW_FORMATS:
            with open_stream(server, path, method) as plivo:
                plivo.start()
                plivo.run(lambda: plivo.sent_s > 0.5)  # playAudio in the flow's format…
                plivo.run(lambda: bool(plivo.names))  # …and a checkpoint after it

    await outside(scenario)


async def test_a_key_moves_the_support_menu_on(server: ServerInfo) -> None:
    welcome = seconds_of(PROMPTS / "welcome.wav")
    expected = seconds_of(PROMPTS / "sales.wav") + seconds_of(PROMPTS / "goodbye.wav")

    def scenario() -> PlivoSide:
        with open_stream(server, "/support") as plivo:
            plivo.start()
            plivo.run(lambda: plivo.played_s > welcome + 1.0)  # into the menu prompt
            plivo.press("1")  # barge-in: the menu prompt is cleared, "1" is sales
            plivo.run(lambda: plivo.clears == 1)
            assert plivo.hung_up() == 1000
            return plivo

    plivo = await outside(scenario)
    assert plivo.clears == 1
    assert plivo.sent_s == pytest.approx(expected, abs=0.02)  # sales, then goodbye
    assert len(plivo.names) >= 3


async def test_a_key_and_a_pin_move_the_bank_menu_on(
    server: ServerInfo, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="callflow")
    bank = PROMPTS / "bank"
    pin = seconds_of(bank / "pin.wav")
    expected = pin + seconds_of(bank / "balance.wav") + seconds_of(PROMPTS / "goodbye.wav")

    def scenario() -> PlivoSide:
        with open_stream(server, "/bank") as plivo:
            plivo.start()
            plivo.run(lambda: plivo.played_s > 0.5)  # the welcome is playing
            plivo.press("1")  # barge-in: the key answers the menu (its prompt is skipped)
            plivo.run(lambda: plivo.clears == 1 and plivo.played_s >= pin - 0.01)
            plivo.run(plivo.idle)
            for digit in "2580":  # a PIN that has to be kept out of the logs
                plivo.press(digit)
            plivo.run(lambda: plivo.sent_s > pin)  # "wrong PIN"
            plivo.run(plivo.idle)
            plivo.run(lambda: plivo.sent_s > pin + 2.0)  # the PIN prompt again
            plivo.run(plivo.idle)
            for digit in "1234":
                plivo.press(digit)
            assert plivo.hung_up() == 1000
            return plivo

    plivo = await outside(scenario)
    wrong = seconds_of(bank / "pin_wrong.wav") + pin
    assert plivo.sent_s == pytest.approx(expected + wrong, abs=0.02)
    lines = [r.getMessage() for r in caplog.records if plivo.call_id in r.getMessage()]
    assert lines
    lines = [line.replace(plivo.call_id, "") for line in lines]
    assert not any("2580" in line or "1234" in line for line in lines)


async def test_forged_signatures_and_streams_without_a_good_token_are_refused(
    server: ServerInfo, caplog: pytest.LogCaptureFixture
) -> None:
    def scenario() -> None:
        params = answer_params("forged-call")
        for method in ("POST", "GET"):
            forged = post_answer(server, "/support", params, method=method, signature="AAAA")
            assert forged.status_code == 403
        other_url = post_answer(server, "/support", params, signed_url=f"{server.url}/bank")
        assert other_url.status_code == 403
        with httpx.Client(timeout=WAIT) as client:
            assert client.post(f"{server.url}/echo", data=params).status_code == 403
        good = answer(server, "/support", "token-call").text or ""
        ws = f"ws://127.0.0.1:{server.port}"
        token = good.partition("?")[2]
        signed, _, call_query = good.partition("&")  # ...?t=TOKEN&CallUUID=token-call
        assert call_query == "CallUUID=token-call"
        for url in (
            f"{ws}/support/stream",  # no token
            f"{ws}/support/stream?t=",
            signed[:-4] + ("AAAA" if not signed.endswith("AAAA") else "BBBB") + "&" + call_query,
            f"{ws}/bank/stream?{token}",  # another flow's stream
        ):
            with pytest.raises(InvalidStatus) as refused, connect(url, open_timeout=WAIT):
                pass
            assert refused.value.response.status_code == 403, url
        with connect(good, open_timeout=WAIT, close_timeout=2):  # the real one connects
            pass

    await outside(scenario)
    refusals = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("call=forged-call" in m and "403" in m for m in refusals)
    assert sum("ws 403" in m for m in refusals) == 4


async def test_garbage_and_unknown_events_are_logged_with_the_call_id_and_the_call_goes_on(
    server: ServerInfo, caplog: pytest.LogCaptureFixture
) -> None:
    prompt = seconds_of(PROMPTS / "echo.wav")

    def scenario() -> PlivoSide:
        with open_stream(server, "/echo") as plivo:  # echoes what it hears after its prompt
            plivo.start()
            plivo.run(lambda: plivo.sent_s >= prompt - 0.01)
            plivo.run(plivo.idle)  # the prompt is over: the flow listens
            for junk in (
                "this is not JSON",
                b"\x00\xffbinary junk",
                "[1, 2, 3]",
                json.dumps({"event": "fancyNewEvent", "streamId": plivo.stream_id}),
                json.dumps(plivo.media("!!not base64!!")),
                json.dumps(plivo.media(base64.b64encode(b"\x01\x02\x03").decode())),  # odd L16
                json.dumps({"event": "dtmf", "streamId": plivo.stream_id, "dtmf": {}}),
            ):
                plivo.send(junk)
            before = plivo.sent_s
            plivo.run(lambda: plivo.sent_s > before + 0.5)  # still echoing the caller
            plivo.press("#")
            assert plivo.hung_up() == 1000  # ended by the flow, not by the junk
            return plivo

    plivo = await outside(scenario)
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and f"call={plivo.call_id}" in r.getMessage()
    ]
    for needle in ("not JSON", "binary junk", "[1, 2, 3]", "fancyNewEvent", "dtmf.digit"):
        assert any(needle in line for line in lines), (needle, lines)
    assert sum("field media.payload" in line for line in lines) == 2, lines
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@flow("/raises", format=Format.MULAW_8K)
async def raises(call: Call) -> None:
    """A broken flow: it sends a key, then raises."""
    await call.send_dtmf("1")
    raise RuntimeError("this flow is broken")


async def test_a_flow_that_raises_ends_only_its_own_call(
    serve_bundled: ServeBundled, caplog: pytest.LogCaptureFixture
) -> None:
    info = await serve_bundled(raises)
    welcome = seconds_of(PROMPTS / "welcome.wav")

    def scenario() -> tuple[str, PlivoSide]:
        with open_stream(info, "/support") as support:
            support.start()
            support.run(lambda: support.played_s > welcome)  # a live call, into its menu
            call_id = f"raises-{uuid.uuid4().hex[:8]}"
            stream = answer(info, "/raises", call_id, content_type="audio/x-mulaw;rate=8000")
            with PlivoSide(stream, call_id) as doomed:
                doomed.start()
                doomed.hung_up()
                assert [m["event"] for m in doomed.received] == ["sendDTMF"]
            support.press("2")  # the other call goes on: the key still moves its menu
            support.run(lambda: support.clears == 1)
            assert support.hung_up() == 1000
            with open_stream(info, "/support") as later:  # and new calls are served
                later.start()
                later.run(lambda: later.sent_s > 0.5)
            return call_id, support

    call_id, support = await outside(scenario)
    expected = seconds_of(PROMPTS / "support.wav") + seconds_of(PROMPTS / "goodbye.wav")
    assert support.sent_s == pytest.approx(expected, abs=0.02)
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1
    assert f"call={call_id}" in failures[0].getMessage()
    assert failures[0].exc_info is not None
