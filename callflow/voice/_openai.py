"""A cloud engine: OpenAI's speech endpoint (``POST /v1/audio/speech``), streamed as PCM.

Written against the public API: JSON ``{"model", "input", "voice", "response_format": "pcm"}``
with ``Authorization: Bearer KEY``; the answer's body is raw 24 kHz 16-bit little-endian mono
samples, sent as they are made (chunked), so the first words play before the rest exist.
httpx runs on trio, so the call's own task reads the stream; closing it closes the request.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np

from callflow.audio import Audio
from callflow.voice._errors import TtsError, TtsUnavailable
from callflow.voice._text import Break, Text
from callflow.voice._tts import ChunkCutter, _counted, check_length, spoken_segments

__all__ = ["OpenAiTts"]

PCM_RATE = 24000
"""The sample rate of the endpoint's ``pcm`` output (Hz), fixed by the API."""

_ERROR_BODY = 300


class OpenAiTts:
    """OpenAI text-to-speech over HTTP, streamed.

    SSML is not read by the API; SSML text is sent as :func:`~callflow.voice.plain_segments`
    (one request per segment, silence for each ``<break>``).

    Args:
        api_key: the key; ``None`` for ``$OPENAI_API_KEY``.
        model: ``gpt-4o-mini-tts`` (or ``tts-1``, ``tts-1-hd``).
        voice: the default voice (``alloy``, ``coral``, ``sage``, …).
        base_url: the API's root (a proxy, or a local server in tests).
        timeout_s: httpx's connect and read timeout (per read, not for the whole answer).
        transport: an httpx transport (tests).

    Raises:
        TtsUnavailable: no key.
    """

    supports_ssml = False

    def __init__(
        self,
        api_key: str | None = None,
        *,
        model: str = "gpt-4o-mini-tts",
        voice: str = "alloy",
        base_url: str = "https://api.openai.com",
        timeout_s: float = 10.0,
        instructions: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            raise TtsUnavailable("OpenAI text-to-speech needs an API key: set OPENAI_API_KEY")
        self._key = key
        self._model = model
        self.default_voice = voice
        self._url = base_url.rstrip("/") + "/v1/audio/speech"
        self._timeout = httpx.Timeout(timeout_s)
        self._instructions = instructions
        self._transport = transport
        self.name = f"openai {model}" + (f" instructions={instructions}" if instructions else "")

    def _body(self, text: Text, words: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._model,
            "input": words,
            "voice": text.voice or self.default_voice,
            "response_format": "pcm",
        }
        if self._instructions:
            body["instructions"] = self._instructions
        return body

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"}

    def synthesize(self, text: Text) -> Audio:
        check_length(text)
        _counted()
        pieces = []
        with httpx.Client(timeout=self._timeout) as client:
            for part in spoken_segments(text, supports_ssml=False):
                if isinstance(part, Break):
                    pieces.append(np.zeros(round(part.seconds * PCM_RATE), np.int16))
                    continue
                answer = client.post(
                    self._url, json=self._body(text, part), headers=self._headers()
                )
                if answer.status_code != 200:
                    raise _refused(answer.status_code, answer.text)
                body = answer.content
                pieces.append(np.frombuffer(body[: len(body) // 2 * 2], "<i2").astype(np.int16))
        return Audio(np.concatenate(pieces), PCM_RATE)

    async def stream(self, text: Text) -> AsyncIterator[Audio]:
        check_length(text)
        _counted()
        async with httpx.AsyncClient(timeout=self._timeout, transport=self._transport) as client:
            for part in spoken_segments(text, supports_ssml=False):
                if isinstance(part, Break):
                    yield Audio.silence(part.seconds, PCM_RATE)
                    continue
                cutter = ChunkCutter(PCM_RATE)
                request = client.build_request(
                    "POST", self._url, json=self._body(text, part), headers=self._headers()
                )
                try:
                    answer = await client.send(request, stream=True)
                except httpx.HTTPError as exc:
                    raise TtsError(f"OpenAI text-to-speech: {type(exc).__name__}: {exc}") from None
                try:
                    if answer.status_code != 200:
                        raise _refused(
                            answer.status_code, (await answer.aread()).decode("utf-8", "replace")
                        )
                    raw = answer.aiter_raw()
                    try:
                        async for data in raw:
                            for chunk in cutter.feed(data):
                                yield chunk
                    finally:
                        await raw.aclose()  # type: ignore[attr-defined]
                except httpx.HTTPError as exc:
                    raise TtsError(f"OpenAI text-to-speech: {type(exc).__name__}: {exc}") from None
                finally:
                    await answer.aclose()
                rest = cutter.flush()
                if rest is not None:
                    yield rest


def _refused(status: int, body: str) -> TtsError:
    return TtsError(f"OpenAI text-to-speech answered HTTP {status}: {body[:_ERROR_BODY]!r}")
