"""The Deepgram streaming adapter against a local server that speaks that API (127.0.0.1)."""

from __future__ import annotations

import gc
import json
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import trio
import trio_websocket

from callflow.voice import SttError, SttUnavailable
from callflow.voice._deepgram import DeepgramStt
from callflow.voice._stt import SttResult

KEY = "dg-test-key"


class FakeDeepgram:
    """``/v1/listen``: checks the key and the query, counts the audio bytes, and once it has
    0.4 s of audio answers SpeechStarted, an interim result, then two final segments, the
    second ``speech_final``; closes after CloseStream, as Deepgram does."""

    def __init__(self) -> None:
        self.query: dict[str, list[str]] = {}
        self.audio_bytes = 0
        self.closed_stream = False
        self.url = ""

    async def handler(self, request: trio_websocket.WebSocketRequest) -> None:
        headers = dict(request.headers)
        if headers.get(b"authorization") != f"Token {KEY}".encode():
            await request.reject(401, body=b'{"err_code":"INVALID_AUTH"}')
            return
        self.query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
        ws = await request.accept()
        rate = int(self.query["sample_rate"][0])
        sent = False
        try:
            while True:
                message = await ws.get_message()
                if isinstance(message, str):
                    if json.loads(message) == {"type": "CloseStream"}:
                        self.closed_stream = True
                        # Deepgram sends its last results and Metadata, then closes
                        await ws.send_message(json.dumps({"type": "Metadata"}))
                        await ws.aclose()
                        return
                    continue
                self.audio_bytes += len(message)
                if not sent and self.audio_bytes >= 0.4 * rate * 2:
                    sent = True
                    for result in self._script():
                        await ws.send_message(json.dumps(result))
        except trio_websocket.ConnectionClosed:
            return

    @staticmethod
    def _script() -> list[dict[str, Any]]:
        def results(text: str, conf: float, final: bool, speech_final: bool) -> dict[str, Any]:
            return {
                "type": "Results",
                "is_final": final,
                "speech_final": speech_final,
                "channel": {"alternatives": [{"transcript": text, "confidence": conf}]},
            }

        return [
            {"type": "Metadata", "request_id": "r1"},
            {"type": "SpeechStarted", "channel": [0], "timestamp": 0.1},
            results("I want", 0.5, False, False),
            results("I want", 0.9, True, False),
            results("sales", 0.7, True, True),
        ]


@pytest.fixture
async def deepgram(nursery: trio.Nursery) -> FakeDeepgram:
    fake = FakeDeepgram()
    server = await nursery.start(trio_websocket.serve_websocket, fake.handler, "127.0.0.1", 0, None)
    fake.url = f"ws://127.0.0.1:{server.port}/v1/listen"
    return fake


class Frames:
    """Frames of a tone, 20 ms each, ``seconds`` long, then the stream waits (a live call)."""

    def __init__(self, rate: int, seconds: float) -> None:
        self.rate = rate
        self.left = int(seconds * 50)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        if self.left == 0:
            await trio.sleep_forever()
        self.left -= 1
        await trio.sleep(0.001)
        t = np.arange(self.rate // 50) / self.rate
        return (np.sin(2 * np.pi * 300 * t) * 5000).astype(np.int16)


async def test_an_utterance_gives_partials_then_the_final_text(deepgram: FakeDeepgram) -> None:
    stt = DeepgramStt(KEY, url=deepgram.url)
    partials: list[SttResult] = []
    result = await stt.recognize(
        Frames(8000, 2.0), 8000, hints=["sales", "support"], on_partial=partials.append
    )
    assert result == SttResult("I want sales", pytest.approx(0.8), final=True)
    assert partials == [SttResult("", 0.0), SttResult("I want", 0.5)]
    q = deepgram.query
    assert q["encoding"] == ["linear16"]
    assert q["sample_rate"] == ["8000"]
    assert q["channels"] == ["1"]
    assert q["interim_results"] == ["true"]
    assert q["keyterm"] == ["sales", "support"]
    assert deepgram.audio_bytes >= 0.4 * 8000 * 2


# When the server ends the connection (a close after CloseStream, a rejected handshake),
# trio-websocket's client leaves its socket for the garbage collector to close: its
# ResourceWarning, not a leak of the adapter's (which leaves the connection's context).
@pytest.mark.filterwarnings("ignore:unclosed <socket:ResourceWarning")
async def test_the_end_of_the_audio_sends_close_stream(deepgram: FakeDeepgram) -> None:
    class Short(Frames):
        async def __anext__(self) -> Any:
            if self.left == 0:
                raise StopAsyncIteration
            return await super().__anext__()

    stt = DeepgramStt(KEY, url=deepgram.url)
    result = await stt.recognize(Short(16000, 0.1), 16000)
    assert result is None  # too short for the fake to hear anything
    assert deepgram.closed_stream
    gc.collect()  # the client's socket is collected here, inside this test's filter


# When the server ends the connection (a close after CloseStream, a rejected handshake),
# trio-websocket's client leaves its socket for the garbage collector to close: its
# ResourceWarning, not a leak of the adapter's (which leaves the connection's context).
@pytest.mark.filterwarnings("ignore:unclosed <socket:ResourceWarning")
async def test_a_refused_key_is_an_stt_error(deepgram: FakeDeepgram) -> None:
    stt = DeepgramStt("wrong", url=deepgram.url)
    with pytest.raises(SttError, match="refused"):
        await stt.recognize(Frames(8000, 1.0), 8000)
    gc.collect()


def test_no_key_says_which_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    with pytest.raises(SttUnavailable, match="DEEPGRAM_API_KEY"):
        DeepgramStt()
