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
* :class:`Stt`: the recognizer protocol (audio frames in, partial and final
  :class:`SttResult` out): :class:`SoundSwallower` (offline, a closed set of phrases, its model
  in its wheel) and :class:`DeepgramStt` (Deepgram's streaming API). :class:`OpenAiTts` is
  the cloud engine (OpenAI's speech endpoint, streamed).
* :class:`SpeechDetector`: start/end of speech, by the energy rule or WebRTC's VAD model.
* :func:`synthesis_count`: syntheses started since import (with
  :func:`callflow.audio.encode_count`, proof that a cached prompt costs neither).

Errors: :class:`TtsUnavailable` (no engine: names what to install), :class:`TtsError` (an
engine failed), both :class:`VoiceError`.
"""

from callflow.voice._cache import CACHE_ENV, RenderCache, default_cache_dir
from callflow.voice._deepgram import DeepgramStt
from callflow.voice._errors import SttError, SttUnavailable, TtsError, TtsUnavailable, VoiceError
from callflow.voice._espeak import EspeakNg
from callflow.voice._openai import OpenAiTts
from callflow.voice._piper import VOICE_ENV, Piper
from callflow.voice._prompts import Prompts
from callflow.voice._render import Renderer
from callflow.voice._select import TTS_ENV, TtsChoice, TtsSpec, default_tts, resolve_tts
from callflow.voice._sphinx import SoundSwallower, default_stt
from callflow.voice._stt import Frames, PartialHandler, Stt, SttResult
from callflow.voice._text import Break, Text, plain_segments
from callflow.voice._tts import MAX_TEXT_CHARS, Tts, synthesis_count
from callflow.voice._vadmodel import VAD_MODELS, SpeechDetector

__all__ = [
    "CACHE_ENV",
    "MAX_TEXT_CHARS",
    "TTS_ENV",
    "VAD_MODELS",
    "VOICE_ENV",
    "Break",
    "DeepgramStt",
    "EspeakNg",
    "Frames",
    "OpenAiTts",
    "PartialHandler",
    "Piper",
    "Prompts",
    "RenderCache",
    "Renderer",
    "SoundSwallower",
    "SpeechDetector",
    "Stt",
    "SttError",
    "SttResult",
    "SttUnavailable",
    "Text",
    "Tts",
    "TtsChoice",
    "TtsError",
    "TtsSpec",
    "TtsUnavailable",
    "VoiceError",
    "default_cache_dir",
    "default_stt",
    "default_tts",
    "plain_segments",
    "resolve_tts",
    "synthesis_count",
]
