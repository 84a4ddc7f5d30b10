"""The OpenAI speech adapter against a local server that speaks that API (127.0.0.1)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import numpy as np
import pytest
import trio

from callflow.voice import Text, TtsError, TtsUnavailable
from callflow.voice._openai import PCM_RATE, OpenAiTts

KEY = "sk-test-123"


class FakeSpeechApi(BaseHTTPRequestHandler):
    """``POST /v1/audio/speech``: checks the key and body as OpenAI does, answers raw 24 kHz
    PCM in chunks (a 440 Hz tone, 0.1 s per character of input)."""

    requests: ClassVar[list[dict[str, Any]]] = []
    closed_early = threading.Event()

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        if self.path != "/v1/audio/speech":
            self.send_error(404)
            return
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            self._json(401, {"error": {"message": "Incorrect API key provided"}})
            return
        if body.get("response_format") != "pcm" or not body.get("input"):
            self._json(400, {"error": {"message": "bad request"}})
            return
        n = int(PCM_RATE * 0.1 * len(body["input"]))
        t = np.arange(n) / PCM_RATE
        pcm = (np.sin(2 * np.pi * 440 * t) * 9000).astype("<i2").tobytes()
        self.send_response(200)
        self.send_header("Content-Type", "audio/pcm")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for start in range(0, len(pcm), 4801):  # odd sizes: samples split across chunks
                piece = pcm[start : start + 4801]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            type(self).closed_early.set()

    def _json(self, status: int, data: Any) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture
def api() -> Iterator[str]:
    FakeSpeechApi.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeSpeechApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_synthesize_posts_the_documented_body(api: str) -> None:
    tts = OpenAiTts(KEY, base_url=api, voice="coral")
    audio = tts.synthesize(Text("hello"))
    assert audio.sample_rate == PCM_RATE
    assert len(audio) == int(PCM_RATE * 0.5)
    assert FakeSpeechApi.requests == [
        {"model": "gpt-4o-mini-tts", "input": "hello", "voice": "coral", "response_format": "pcm"}
    ]


async def test_stream_yields_chunks_as_they_arrive(api: str) -> None:
    tts = OpenAiTts(KEY, base_url=api)
    chunks = [c async for c in tts.stream(Text("Your balance is 42"))]
    assert len(chunks) > 2
    assert sum(len(c) for c in chunks) == int(PCM_RATE * 0.1 * len("Your balance is 42"))
    whole = np.concatenate([c.samples for c in chunks])
    assert (
        np.abs(np.diff(whole.astype(np.int32))).max() < 2000
    )  # no sample torn in two (a tear jumps ~30 000)


async def test_ssml_is_sent_as_words_with_silence_between(api: str) -> None:
    tts = OpenAiTts(KEY, base_url=api)
    chunks = [c async for c in tts.stream(Text('<speak>one<break time="1s"/>two</speak>'))]
    assert [r["input"] for r in FakeSpeechApi.requests] == ["one", "two"]
    assert sum(c.duration_s for c in chunks) == pytest.approx(0.3 + 1.0 + 0.3, abs=0.01)


async def test_a_refusal_is_a_tts_error_naming_the_status(api: str) -> None:
    tts = OpenAiTts("sk-wrong", base_url=api)
    with pytest.raises(TtsError, match=r"HTTP 401.*Incorrect API key"):
        [c async for c in tts.stream(Text("hi"))]
    with pytest.raises(TtsError, match="HTTP 401"):
        tts.synthesize(Text("hi"))


async def test_an_unreachable_service_is_a_tts_error() -> None:
    tts = OpenAiTts(KEY, base_url="http://127.0.0.1:9", timeout_s=2)
    with pytest.raises(TtsError, match="ConnectError"):
        [c async for c in tts.stream(Text("hi"))]


# httpx/httpcore leave their own nested body generators to trio's finalizer when a streamed
# body is closed before its end (the request itself is closed at once, as asserted): those
# ResourceWarnings are theirs, and Python ignores ResourceWarning outside tests.
@pytest.mark.filterwarnings("ignore:Async generator 'http:ResourceWarning")
async def test_closing_the_stream_closes_the_request(api: str) -> None:
    tts = OpenAiTts(KEY, base_url=api)
    stream = tts.stream(Text("x" * 2000))  # 200 s of audio, more than any socket buffers
    await stream.__anext__()
    await stream.aclose()  # type: ignore[attr-defined]
    # the server's next writes fail: nobody reads any more
    assert await trio.to_thread.run_sync(FakeSpeechApi.closed_early.wait, 10)


def test_no_key_says_which_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(TtsUnavailable, match="OPENAI_API_KEY"):
        OpenAiTts()
