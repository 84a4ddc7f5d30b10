"""What ``say``/``play`` accept (:data:`AudioSource`), turned into ``playAudio`` payloads: base64
strings of whole samples in the stream's format, each at most one chunk
(``callflow.audio.chunk_payloads``)."""

from __future__ import annotations

import collections
import os
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from pathlib import Path

import attrs

from callflow.audio import Audio, chunk_payloads
from callflow.protocol import Format
from callflow.voice import Renderer, Text

AudioSource = Audio | Text | str | os.PathLike[str] | bytes | AsyncIterable[Audio | bytes]
"""What ``say``/``play`` accept: an :class:`Audio`; words to speak (a :class:`Text`, or a
``str`` that does not end in ``.wav``); a WAV file path (a ``str`` ending in ``.wav``, any case,
or any ``os.PathLike``); raw bytes already in the stream's wire format; or an async iterable of
``Audio``/raw-bytes chunks (a streaming source). An async iterable is read as its chunks
arrive, and its iterator is closed (``aclose``) when the ``say``/``play`` ends, finished or
stopped early. Text plays from the render cache, or is synthesised as it plays."""


def is_wav_path(source: str) -> bool:
    """Whether a ``str`` source names a WAV file (ends in ``.wav``, any case) rather than
    words to speak."""
    return source.rstrip().lower().endswith(".wav")


def b64_len(payload: str) -> int:
    """Raw bytes in a base64 string (no decoding)."""
    return len(payload) // 4 * 3 - (payload[-2:].count("=") if payload else 0)


def ready_payloads(source: AudioSource, fmt: Format) -> tuple[str, ...] | None:
    """The payloads of a source that is encoded already (an :class:`Audio`, cached per
    format; raw ``bytes``, cached by content), with no generator to run; None for the other
    kinds (text, a WAV path, a stream), which :func:`payloads` yields as it makes them.

    Raises:
        ValueError: raw bytes that are not whole samples of ``fmt``.
    """
    if isinstance(source, Audio):
        return source.payloads(fmt)
    if isinstance(source, bytes):
        return _raw_cache.payloads(source, fmt)
    return None


async def payloads(
    source: AudioSource, fmt: Format, renderer: Callable[[], Renderer] | None = None
) -> AsyncGenerator[str, None]:
    """The base64 ``playAudio`` payloads of ``source`` in ``fmt``, in order. Text is spoken by
    ``renderer()`` (the call's engine and render cache).

    Raises:
        ValueError: raw bytes that are not whole samples of ``fmt``.
        TypeError: a ``source`` of another type, or text with no ``renderer``.
        callflow.audio.AudioError: a WAV file that cannot be read.
        callflow.voice.TtsUnavailable: text, and no engine is installed.
        callflow.voice.TtsError: the engine failed.
    """
    if isinstance(source, str) and not is_wav_path(source):
        source = Text(source)
    if isinstance(source, Text):
        if renderer is None:
            raise TypeError("text needs a text-to-speech engine (a Call's tts)")
        source = renderer().stream(source, fmt)
    ready = ready_payloads(source, fmt)
    if ready is not None:
        for payload in ready:
            yield payload
    elif isinstance(source, bytearray | memoryview):
        for payload in raw_payloads(bytes(source), fmt):
            yield payload
    elif isinstance(source, str | os.PathLike):
        for payload in load_wav(Path(source)).payloads(fmt):
            yield payload
    elif isinstance(source, AsyncIterable):
        # A say that stops early (barge-in, clear, cancel) never resumes the source, so
        # its iterator is closed here rather than left suspended for the garbage
        # collector to finalize at some odd later moment (an async generator's
        # ``finally`` would then run outside the call).
        chunks = aiter(source)
        try:
            async for chunk in chunks:
                if isinstance(chunk, Audio):
                    for payload in chunk.payloads(fmt):
                        yield payload
                else:
                    for payload in raw_payloads(bytes(chunk), fmt):
                        yield payload
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
    else:
        raise TypeError(f"cannot play {type(source).__name__}: {AudioSource}")


def raw_payloads(raw: bytes, fmt: Format) -> tuple[str, ...]:
    """``raw`` wire bytes as payloads.

    Raises:
        ValueError: not a whole number of ``fmt``'s samples.
    """
    if len(raw) % fmt.sample_width:
        raise ValueError(f"{len(raw)} bytes is not a whole number of {fmt.content_type} samples")
    return chunk_payloads(raw, fmt)


class RawPayloadCache:
    """The payloads of raw ``bytes`` prompts, encoded once per format, as :class:`Audio`'s are.

    Keyed by content: ``bytes`` are immutable and cache their own hash, so a prompt held in a
    module constant costs one dict look-up per play (an identity compare), and another
    ``bytes`` object with the same content hits too. ``bytearray`` and ``memoryview`` can
    change under the cache and are never cached, nor are the chunks of a streaming source
    (each is played once). Least recently used entries go first once the cached raw audio
    passes ``max_bytes`` (default 64 MiB, about 2 h of μ-law); a prompt larger than that is
    encoded each time.
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._entries: collections.OrderedDict[tuple[bytes, Format], tuple[str, ...]] = (
            collections.OrderedDict()
        )
        self._size = 0
        self.encodings = 0
        """How many times a prompt was encoded (misses), for tests and the bench."""

    def payloads(self, raw: bytes, fmt: Format) -> tuple[str, ...]:
        """``raw_payloads(raw, fmt)``, from the cache when it was encoded before.

        Raises:
            ValueError: not a whole number of ``fmt``'s samples (never cached).
        """
        key = (raw, fmt)
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
            return found
        encoded = raw_payloads(raw, fmt)
        self.encodings += 1
        if len(raw) <= self.max_bytes:
            self._entries[key] = encoded
            self._size += len(raw)
            while self._size > self.max_bytes:
                (old, _), _ = self._entries.popitem(last=False)
                self._size -= len(old)
        return encoded

    def __len__(self) -> int:
        return len(self._entries)


_raw_cache = RawPayloadCache()


@attrs.frozen
class _WavKey:
    path: Path
    mtime_ns: int
    size: int


_wav_cache: dict[_WavKey, Audio] = {}
_WAV_CACHE_MAX = 256


def load_wav(path: Path) -> Audio:
    """A WAV file as Audio, cached by path, mtime and size, so a prompt file is read and
    encoded once however many calls play it."""
    stat = path.stat()
    key = _WavKey(path.resolve(), stat.st_mtime_ns, stat.st_size)
    audio = _wav_cache.get(key)
    if audio is None:
        if len(_wav_cache) >= _WAV_CACHE_MAX:
            _wav_cache.pop(next(iter(_wav_cache)))
        audio = _wav_cache[key] = Audio.from_wav(path)
    return audio
