"""Voice: prompts from text (a ``Tts`` seam, a render cache) and answers by voice (``Stt``).

Imports ``audio`` and ``protocol`` only; the runtime imports it.

* :class:`Text`: words (or SSML) to speak; ``call.say("…")`` wraps a str in it.
* :class:`Tts`: the engine protocol (``synthesize`` whole, ``stream`` chunks). Engines:
  :class:`Piper` (neural, offline, ``pip install 'callflow-plivo[piper]'``) and
  :class:`EspeakNg` (formant, offline, ``apt-get install espeak-ng``), both run as programs.
  :func:`resolve_tts` picks one by name (``"auto"``: Piper when it has a voice, else
  espeak-ng); :class:`TtsChoice` is a flow's choice, resolved once.
* :class:`RenderCache` and :class:`Renderer`: content-addressed renderings on disk,
  synthesised once and encoded once per format; :class:`Prompts` declares a module's fixed
  text prompts so ``callflow prompts build`` renders them ahead of time.
* :func:`synthesis_count`: syntheses started since import (with
  :func:`callflow.audio.encode_count`, proof that a cached prompt costs neither).

Errors: :class:`TtsUnavailable` (no engine: names what to install), :class:`TtsError` (an
engine failed), both :class:`VoiceError`.
"""

from callflow.voice._cache import CACHE_ENV, RenderCache, default_cache_dir
from callflow.voice._errors import SttError, SttUnavailable, TtsError, TtsUnavailable, VoiceError
from callflow.voice._espeak import EspeakNg
from callflow.voice._piper import VOICE_ENV, Piper
from callflow.voice._prompts import Prompts
from callflow.voice._render import Renderer
from callflow.voice._select import TTS_ENV, TtsChoice, TtsSpec, resolve_tts
from callflow.voice._text import Break, Text, plain_segments
from callflow.voice._tts import MAX_TEXT_CHARS, Tts, synthesis_count

__all__ = [
    "CACHE_ENV",
    "MAX_TEXT_CHARS",
    "TTS_ENV",
    "VOICE_ENV",
    "Break",
    "EspeakNg",
    "Piper",
    "Prompts",
    "RenderCache",
    "Renderer",
    "SttError",
    "SttUnavailable",
    "Text",
    "Tts",
    "TtsChoice",
    "TtsError",
    "TtsSpec",
    "TtsUnavailable",
    "VoiceError",
    "default_cache_dir",
    "plain_segments",
    "resolve_tts",
    "synthesis_count",
]
