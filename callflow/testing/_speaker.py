"""Play what the caller hears through the machine's speaker (``pip install
'callflow-plivo[audio]'``: sounddevice and the PortAudio library)."""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import Any

import numpy as np

from callflow.audio import decode
from callflow.protocol import Format


class Speaker:
    """A mono 16-bit output stream at the call's rate, fed from a thread of its own."""

    def __init__(self, fmt: Format, stream: Any) -> None:
        self.format = fmt
        self._stream = stream
        self._chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="callflow-speaker", daemon=True)
        self._thread.start()

    @classmethod
    def open(cls, fmt: Format) -> Speaker | None:
        """A speaker for ``fmt``, or ``None`` when sounddevice is not installed or the machine
        has no output device."""
        try:
            import sounddevice

            sounddevice.query_devices(kind="output")
            stream = sounddevice.RawOutputStream(
                samplerate=fmt.sample_rate, channels=1, dtype="int16"
            )
            stream.start()
        except Exception:  # ImportError, OSError (no PortAudio), PortAudioError (no device)
            return None
        return cls(fmt, stream)

    def play(self, encoded: bytes) -> None:
        """Queue audio in the stream's wire encoding; returns at once."""
        pcm = decode(encoded, self.format).astype(np.int16)
        self._chunks.put(pcm.tobytes())

    def close(self) -> None:
        """Stop after what was queued has played."""
        self._chunks.put(None)
        self._thread.join(timeout=5)
        with contextlib.suppress(Exception):
            self._stream.stop()
            self._stream.close()

    def _write(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            with contextlib.suppress(Exception):
                self._stream.write(chunk)
