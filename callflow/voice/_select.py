"""Choosing the engine: ``tts=`` on a flow or the server, ``"auto"`` by default."""

from __future__ import annotations

import functools
import os

from callflow.voice._cache import RenderCache
from callflow.voice._errors import TtsUnavailable
from callflow.voice._espeak import EspeakNg
from callflow.voice._piper import INSTALL_HINT, Piper, bundled_voice, find_piper
from callflow.voice._render import Renderer
from callflow.voice._tts import Tts

__all__ = ["TTS_ENV", "TtsChoice", "TtsSpec", "default_tts", "resolve_tts"]

TTS_ENV = "CALLFLOW_TTS"
"""Environment variable with the server's engine for flows that say ``tts="auto"``: ``piper``,
``piper:/path/voice.onnx``, ``espeak-ng`` or ``espeak-ng:VOICE`` (``callflow serve --tts``
sets it)."""

TtsSpec = Tts | str
"""What ``tts=`` takes: an engine object, or a name: ``"auto"``, ``"piper"``,
``"piper:/path/voice.onnx"``, ``"espeak-ng"``, ``"espeak-ng:en-gb"``."""

NO_ENGINE = (
    "no text-to-speech engine is available: "
    f"{INSTALL_HINT}, or apt-get install espeak-ng, or set {TTS_ENV}"
)


def resolve_tts(spec: TtsSpec = "auto") -> Tts:
    """The engine ``spec`` names.

    ``"auto"`` is ``$CALLFLOW_TTS`` when set; else Piper when its program and a voice are
    there (``$CALLFLOW_PIPER_VOICE`` or an installed voice package); else espeak-ng when it is
    on ``PATH``.

    Raises:
        TtsUnavailable: the engine (or, for ``"auto"``, every engine) is missing; the message
            names what to install.
        ValueError: an unknown engine name.
    """
    if not isinstance(spec, str):
        if not isinstance(spec, Tts):
            raise TypeError(f"tts must be an engine (callflow.voice.Tts) or a name, not {spec!r}")
        return spec
    name, _, arg = spec.partition(":")
    if name == "auto":
        env = os.environ.get(TTS_ENV)
        if env and env.partition(":")[0] != "auto":
            return resolve_tts(env)
        if find_piper() is not None and (os.environ.get("CALLFLOW_PIPER_VOICE") or bundled_voice()):
            return Piper()
        try:
            return EspeakNg()
        except TtsUnavailable:
            raise TtsUnavailable(NO_ENGINE) from None
    if name == "piper":
        return Piper(arg or None)
    if name in ("espeak-ng", "espeak"):
        return EspeakNg(arg or "en-us")
    raise ValueError(
        f"unknown text-to-speech engine {spec!r}: auto, piper[:MODEL], espeak-ng[:VOICE]"
    )


class TtsChoice:
    """A flow's engine choice, resolved once.

    An explicit engine (anything but ``"auto"``) is resolved when the choice is made, so a
    missing engine fails where the flow is declared. ``"auto"`` is resolved on first use, or
    by :meth:`check` (the loader calls it for flows that declare text prompts), so a flow
    playing only WAV files loads on a machine without an engine.

    Raises (constructor):
        TtsUnavailable: an explicit engine that is missing.
        ValueError: an unknown engine name.
    """

    def __init__(self, spec: TtsSpec = "auto", cache: RenderCache | None = None) -> None:
        self.spec = spec
        self._cache = cache
        self._renderer: Renderer | None = None
        if not (isinstance(spec, str) and spec.partition(":")[0] == "auto"):
            self._renderer = Renderer(resolve_tts(spec), cache)

    @property
    def explicit(self) -> bool:
        """Whether the flow named its engine (not ``"auto"``)."""
        return not (isinstance(self.spec, str) and self.spec.partition(":")[0] == "auto")

    def check(self) -> None:
        """Resolve now.

        Raises:
            TtsUnavailable: no engine (the message names what to install).
        """
        self.renderer()

    def renderer(self) -> Renderer:
        """The engine with its render cache.

        Raises:
            TtsUnavailable: no engine (the message names what to install).
        """
        if self._renderer is None:
            self._renderer = Renderer(resolve_tts(self.spec), self._cache)
        return self._renderer

    def __repr__(self) -> str:
        return f"TtsChoice({self.spec!r})"


@functools.cache
def default_tts() -> TtsChoice:
    """The process's ``"auto"`` choice, shared by every flow that names no engine (one
    resolution, one in-memory render cache per process)."""
    return TtsChoice("auto")
