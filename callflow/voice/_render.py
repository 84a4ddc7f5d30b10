"""``Renderer``: an engine with its render cache, what a call speaks text through."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from callflow.audio import Audio
from callflow.protocol import Format
from callflow.voice._cache import RenderCache
from callflow.voice._text import Text
from callflow.voice._tts import Tts

__all__ = ["Renderer"]


class Renderer:
    """Speaks :class:`Text` with ``tts``, through ``cache``.

    A text in the cache plays from it (no synthesis; no encoding once its format is on disk).
    Any other text is synthesised as it plays (:meth:`stream`), and kept in the cache once its
    synthesis has finished (unless ``Text(cache=False)``); a synthesis stopped early (barge-in)
    keeps nothing.

    Args:
        tts: the engine.
        cache: the render cache; ``None`` for one in the default folder.
    """

    def __init__(self, tts: Tts, cache: RenderCache | None = None) -> None:
        self.tts = tts
        self.cache = cache if cache is not None else RenderCache()

    def key(self, text: Text) -> str:
        """The cache key of ``text`` with this engine."""
        return RenderCache.key(self.tts.name, text, text.voice or self.tts.default_voice)

    def cached(self, text: Text, fmt: Format) -> Audio | None:
        """The cached rendering of ``text`` for ``fmt``, or None."""
        return self.cache.get(self.key(text), fmt) if text.cache else None

    def render(self, text: Text, fmt: Format) -> Audio:
        """The rendering of ``text``, synthesised now (blocking) unless cached, then kept.

        Raises:
            TtsError: the engine failed.
        """
        audio = self.cached(text, fmt)
        if audio is None:
            audio = self.tts.synthesize(text)
            if text.cache:
                key = self.key(text)
                self.cache.put(key, audio)
                audio = self.cache.get(key, fmt) or audio
        return audio

    async def stream(self, text: Text, fmt: Format) -> AsyncIterator[Audio]:
        """``text`` as chunks to play: the cached rendering (one chunk), or the engine's
        chunks as they come. Closing the iterator early stops the synthesis.

        Raises:
            TtsError: the engine failed.
        """
        audio = self.cached(text, fmt)
        if audio is not None:
            yield audio
            return
        pieces: list[Audio] = []
        chunks = self.tts.stream(text)
        try:
            async for chunk in chunks:
                if text.cache:
                    pieces.append(chunk)
                yield chunk
        finally:
            with contextlib.suppress(RuntimeError):  # already closed by its own end
                await chunks.aclose()  # type: ignore[attr-defined]
        if text.cache and pieces:
            # Each chunk was encoded for ``fmt`` as it played (and keeps that encoding): their
            # bytes joined are the rendering in ``fmt``, so keeping it encodes nothing again.
            wire = b"".join(piece.encoded(fmt) for piece in pieces)
            self.cache.put(self.key(text), Audio.concat(pieces), wire={fmt: wire})
