"""Audio for Plivo streams: codecs, resampling, WAV files, tones and the cached ``Audio`` value.

Pure numpy (and soxr for resampling); imports no trio.

* Codecs (PROTOCOL.md §4): :func:`ulaw_encode` / :func:`ulaw_decode` (G.711 μ-law),
  :func:`l16_encode` / :func:`l16_decode` (signed 16-bit **little-endian**), and
  :func:`encode` / :func:`decode` dispatching on a :class:`~callflow.protocol.Format`. PCM is
  always a 1-D numpy int16 array.
* :func:`resample`: any rate to any rate, anti-aliased.
* :func:`read_wav` / :func:`write_wav`, :func:`silence`, :func:`beep`, :func:`dtmf_tone`.
* :class:`Audio`: immutable PCM + rate whose wire encoding and ``playAudio`` payloads are
  computed once per format (:func:`encode_count` counts the encodes);
  :class:`PromptFolder` from :meth:`Audio.folder`.
* :func:`chunk_payloads`: raw wire bytes → base64 payloads of at most 16 384 characters.

Errors: bad files raise :class:`AudioError` (a :class:`ValueError`); wrong argument types
raise :class:`TypeError`, wrong values :class:`ValueError`.
"""

from callflow.audio._audio import Audio, PromptFolder, encode_count, read_wav, write_wav
from callflow.audio._chunk import MAX_B64, chunk_bytes, chunk_payloads, frame_bytes
from callflow.audio._codec import (
    decode,
    encode,
    l16_decode,
    l16_encode,
    ulaw_decode,
    ulaw_encode,
)
from callflow.audio._errors import AudioError
from callflow.audio._resample import resample
from callflow.audio._tones import DTMF_FREQUENCIES, beep, dtmf_tone, silence

__all__ = [
    "DTMF_FREQUENCIES",
    "MAX_B64",
    "Audio",
    "AudioError",
    "PromptFolder",
    "beep",
    "chunk_bytes",
    "chunk_payloads",
    "decode",
    "dtmf_tone",
    "encode",
    "encode_count",
    "frame_bytes",
    "l16_decode",
    "l16_encode",
    "read_wav",
    "resample",
    "silence",
    "ulaw_decode",
    "ulaw_encode",
    "write_wav",
]
