"""espeak-ng as a program (``apt-get install espeak-ng``): formant synthesis, reads SSML."""

from __future__ import annotations

import functools
import shutil
import struct
import subprocess
from collections.abc import AsyncIterator

import numpy as np

from callflow.audio import Audio
from callflow.voice._errors import TtsError, TtsUnavailable
from callflow.voice._process import run_program, stream_program
from callflow.voice._text import Text
from callflow.voice._tts import ChunkCutter, _counted, check_length

__all__ = ["EspeakNg"]

_HEADER = 44  # espeak-ng --stdout writes a canonical 44-byte RIFF header, then the samples


@functools.cache
def _version(program: str) -> str:
    try:
        out = subprocess.run(
            [program, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    words = out.split()
    return words[3] if len(words) > 3 else "unknown"  # "eSpeak NG text-to-speech: 1.51 ..."


def _rate(header: bytes) -> int:
    if len(header) < _HEADER or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
        raise TtsError("espeak-ng --stdout did not write a WAV header")
    (rate,) = struct.unpack_from("<I", header, 24)
    return int(rate)


class EspeakNg:
    """espeak-ng run as a program, once per text.

    It reads SSML itself (``-m``): ``<break>``, ``<say-as interpret-as="characters">``,
    ``<prosody>``, ``<emphasis>``; ``interpret-as="digits"`` is rewritten to ``characters``,
    which espeak-ng reads digit by digit. Output is 22 050 Hz mono.

    Args:
        voice: the default voice (``espeak-ng --voices`` lists them), ``en-us``.
        words_per_minute: speaking rate (espeak-ng ``-s``, default 160; telephone prompts
            often sound better a little slower).
        program: the program's name or path.

    Raises:
        TtsUnavailable: the program is not on ``PATH`` (the message says
            ``apt-get install espeak-ng``).
    """

    supports_ssml = True

    def __init__(
        self,
        voice: str = "en-us",
        *,
        words_per_minute: int = 160,
        program: str = "espeak-ng",
    ) -> None:
        found = shutil.which(program)
        if found is None:
            raise TtsUnavailable(
                f"espeak-ng is not installed ({program!r} is not on PATH): "
                "apt-get install espeak-ng"
            )
        self._program = found
        self.default_voice = voice
        self._wpm = int(words_per_minute)
        self.name = f"espeak-ng {_version(found)} wpm={self._wpm}"

    def _argv(self, text: Text) -> list[str]:
        argv = [self._program, "--stdout", "-v", text.voice or self.default_voice]
        argv += ["-s", str(self._wpm)]
        if text.is_ssml:
            argv.append("-m")
        return argv

    @staticmethod
    def _input(text: Text) -> bytes:
        body = text.text
        if text.is_ssml:
            body = body.replace('interpret-as="digits"', 'interpret-as="characters"')
        else:
            body = " ".join(body.split())  # one paragraph: newlines would end the utterance
        return body.encode()

    def synthesize(self, text: Text) -> Audio:
        check_length(text)
        _counted()
        out = run_program(self._argv(text), self._input(text))
        rate = _rate(out[:_HEADER])
        body = out[_HEADER:]
        return Audio(np.frombuffer(body[: len(body) // 2 * 2], dtype="<i2").astype(np.int16), rate)

    async def stream(self, text: Text) -> AsyncIterator[Audio]:
        check_length(text)
        _counted()
        header = b""
        cutter: ChunkCutter | None = None
        program = stream_program(self._argv(text), self._input(text))
        try:
            async for data in program:
                if cutter is None:
                    header += data
                    if len(header) < _HEADER:
                        continue
                    cutter = ChunkCutter(_rate(header))
                    data, header = header[_HEADER:], b""
                for chunk in cutter.feed(data):
                    yield chunk
        finally:
            await program.aclose()  # stopped early: kill the program now, not at GC time
        if cutter is None:
            raise TtsError("espeak-ng wrote no audio")
        rest = cutter.flush()
        if rest is not None:
            yield rest
