"""A cloud recognizer: Deepgram's live streaming API (``wss://api.deepgram.com/v1/listen``).

Written against the public API: the query says the audio (``encoding=linear16``,
``sample_rate``, ``channels=1``) and asks for ``interim_results`` and ``endpointing``; the key
goes in ``Authorization: Token KEY``; audio is sent as binary messages; Deepgram answers JSON
``{"type": "Results", "is_final", "speech_final", "channel": {"alternatives": [{"transcript",
"confidence"}]}}``; ``{"type": "CloseStream"}`` ends the stream.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Sequence
from typing import Any

import numpy as np
import trio
import trio_websocket

from callflow.voice._errors import SttError, SttUnavailable
from callflow.voice._stt import Frames, PartialHandler, SttResult

__all__ = ["DeepgramStt"]

_MAX_MESSAGE = 1 << 20


class DeepgramStt:
    """Deepgram live transcription for one utterance per :meth:`recognize`.

    ``hints`` are sent as ``keyterm`` (Nova-3's keyterm prompting). The utterance ends at
    Deepgram's ``speech_final`` (``endpointing_ms`` of silence); the text of every final
    segment up to it is joined.

    Args:
        api_key: the key; ``None`` for ``$DEEPGRAM_API_KEY``.
        model: ``nova-3``.
        language: ``en-US``.
        endpointing_ms: silence that ends the utterance.
        url: the endpoint (a local server in tests).

    Raises:
        SttUnavailable: no key.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        model: str = "nova-3",
        language: str = "en-US",
        endpointing_ms: int = 500,
        url: str = "wss://api.deepgram.com/v1/listen",
    ) -> None:
        key = api_key or os.environ.get("DEEPGRAM_API_KEY")
        if not key:
            raise SttUnavailable("Deepgram speech-to-text needs an API key: set DEEPGRAM_API_KEY")
        self._key = key
        self._model = model
        self._language = language
        self._endpointing_ms = endpointing_ms
        self._url = url
        self.name = f"deepgram {model}"

    def _query(self, sample_rate: int, hints: Sequence[str]) -> str:
        params: list[tuple[str, str]] = [
            ("model", self._model),
            ("language", self._language),
            ("encoding", "linear16"),
            ("sample_rate", str(sample_rate)),
            ("channels", "1"),
            ("interim_results", "true"),
            ("endpointing", str(self._endpointing_ms)),
            ("vad_events", "true"),
        ]
        params += [("keyterm", hint) for hint in hints]
        return f"{self._url}?{urllib.parse.urlencode(params)}"

    async def recognize(
        self,
        frames: Frames,
        sample_rate: int,
        *,
        hints: Sequence[str] = (),
        on_partial: PartialHandler | None = None,
    ) -> SttResult | None:
        url = self._query(sample_rate, hints)
        result: SttResult | None = None
        try:
            async with (
                trio_websocket.open_websocket_url(
                    url,
                    extra_headers=[(b"Authorization", f"Token {self._key}".encode())],
                    max_message_size=_MAX_MESSAGE,
                ) as ws,
                trio.open_nursery() as nursery,
            ):

                async def send_audio() -> None:
                    async for frame in frames:
                        await ws.send_message(frame.astype("<i2").tobytes())
                    await ws.send_message(json.dumps({"type": "CloseStream"}))

                nursery.start_soon(send_audio)
                result = await self._results(ws, on_partial)
                nursery.cancel_scope.cancel()
        except (trio_websocket.HandshakeError, OSError) as exc:
            raise SttError(f"Deepgram refused the stream: {exc}") from None
        except trio_websocket.ConnectionClosed:
            pass
        return result

    async def _results(
        self, ws: trio_websocket.WebSocketConnection, on_partial: PartialHandler | None
    ) -> SttResult | None:
        finals: list[str] = []
        confidences: list[float] = []
        heard = False
        while True:
            try:
                message = await ws.get_message()
            except trio_websocket.ConnectionClosed:
                break
            if not isinstance(message, str):
                continue
            try:
                data: Any = json.loads(message)
            except ValueError:
                raise SttError("Deepgram sent a message that is not JSON") from None
            kind = data.get("type") if isinstance(data, dict) else None
            if kind == "SpeechStarted":
                heard = True
                if on_partial is not None:
                    on_partial(SttResult("", 0.0, final=False))
                continue
            if kind != "Results":
                continue
            text, confidence = _best(data)
            if text:
                heard = True
            if data.get("is_final"):
                if text:
                    finals.append(text)
                    confidences.append(confidence)
                if data.get("speech_final") and finals:
                    break
            elif text and on_partial is not None:
                on_partial(SttResult(" ".join([*finals, text]), confidence, final=False))
        if not heard and not finals:
            return None
        confidence = float(np.mean(confidences)) if confidences else 0.0
        return SttResult(" ".join(finals), confidence, final=True)


def _best(data: dict[str, Any]) -> tuple[str, float]:
    try:
        alternative = data["channel"]["alternatives"][0]
        return str(alternative.get("transcript", "")).strip(), float(
            alternative.get("confidence", 0.0)
        )
    except (KeyError, IndexError, TypeError, ValueError):
        return "", 0.0
