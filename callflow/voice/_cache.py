"""The render cache: text prompts synthesised once, encoded once per format, on disk.

Content-addressed: an entry's name is the SHA-256 of (engine, voice, SSML or not, text), so
the same prompt rendered by any worker on the host lands in the same file, and a new engine
version or voice model is a new entry, never a stale one. Files are written to a temporary
name and renamed into place, so a reader never sees half a file and two workers rendering
the same prompt at once both end with the same whole file.

Layout under the cache folder: ``ab/abcdef….wav`` (the engine's rendering, 16-bit mono at the
engine's rate) and ``ab/abcdef….MULAW_8K`` (the same audio encoded for a stream format: raw
wire bytes, what ``playAudio`` carries).
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from callflow.audio import Audio, AudioError, read_wav, write_wav
from callflow.protocol import Format
from callflow.voice._text import Text

__all__ = ["CACHE_ENV", "RenderCache", "default_cache_dir"]

CACHE_ENV = "CALLFLOW_PROMPT_CACHE"
"""Environment variable naming the render cache folder."""


def default_cache_dir() -> Path:
    """``$CALLFLOW_PROMPT_CACHE``, else ``$XDG_CACHE_HOME/callflow/prompts``, else
    ``~/.cache/callflow/prompts``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "callflow" / "prompts"


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class RenderCache:
    """Rendered text prompts on disk, with the most recent in memory.

    Args:
        folder: where the files live (created on first write); ``None`` for
            :func:`default_cache_dir`. Share it between the workers of a host.
        memory_entries: how many (prompt, format) renderings each process keeps in memory
            (least recently used beyond that are dropped from memory, not from disk).

    The disk is not pruned: fixed prompts are few; one-off text (``Text(…, cache=False)``)
    never reaches it. Delete the folder to start again.
    """

    def __init__(self, folder: str | os.PathLike[str] | None = None, *, memory_entries: int = 512):
        self.folder = Path(folder) if folder is not None else default_cache_dir()
        self._memory: collections.OrderedDict[tuple[str, Format], Audio] = collections.OrderedDict()
        self._memory_entries = memory_entries
        self.hits = 0
        """Lookups answered from memory or disk."""
        self.misses = 0
        """Lookups that found nothing (the text must be synthesised)."""

    @staticmethod
    def key(engine: str, text: Text, voice: str) -> str:
        """The entry name (64 hex digits) of ``text`` spoken by ``engine`` in ``voice``."""
        material = json.dumps([1, engine, voice, text.is_ssml, text.text], ensure_ascii=False)
        return hashlib.sha256(material.encode()).hexdigest()

    def _path(self, key: str, suffix: str) -> Path:
        return self.folder / key[:2] / f"{key}.{suffix}"

    def get(self, key: str, fmt: Format) -> Audio | None:
        """The rendering ``key`` ready to play in ``fmt``, or None when there is none.

        Memory first; then the file already encoded for ``fmt`` (no encoding: its bytes seed
        the value's cache); then the rendering itself, encoded now once and written for the
        next worker.
        """
        memory_key = (key, fmt)
        audio = self._memory.get(memory_key)
        if audio is not None:
            self._memory.move_to_end(memory_key)
            self.hits += 1
            return audio
        try:
            audio = Audio.from_bytes(self._path(key, fmt.name).read_bytes(), fmt)
        except (OSError, ValueError):
            audio = self._from_rendering(key, fmt)
        if audio is None:
            self.misses += 1
            return None
        self.hits += 1
        self._remember(memory_key, audio)
        return audio

    def _from_rendering(self, key: str, fmt: Format) -> Audio | None:
        try:
            rendering = read_wav(self._path(key, "wav"))
        except (OSError, AudioError):
            return None
        _atomic_write(self._path(key, fmt.name), rendering.encoded(fmt))
        return rendering

    def put(self, key: str, audio: Audio, *, wire: Mapping[Format, bytes] | None = None) -> None:
        """Keep ``audio`` as the rendering ``key`` on disk. ``wire`` gives its encodings already
        made (what a streamed synthesis played), so no format of it is encoded again; other
        formats are encoded when first asked for."""
        for fmt, data in (wire or {}).items():
            _atomic_write(self._path(key, fmt.name), data)
            self._remember((key, fmt), Audio.from_bytes(data, fmt))
        path = self._path(key, "wav")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            write_wav(tmp, audio)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def _remember(self, memory_key: tuple[str, Format], audio: Audio) -> None:
        self._memory[memory_key] = audio
        while len(self._memory) > self._memory_entries:
            self._memory.popitem(last=False)
