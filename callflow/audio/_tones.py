"""Generated audio: silence, beeps and DTMF tones."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from callflow.audio._audio import Audio, _sample_count

__all__ = ["DTMF_FREQUENCIES", "beep", "dtmf_tone", "silence"]

_ROWS = (697, 770, 852, 941)
_COLS = (1209, 1336, 1477, 1633)
_KEYPAD = ("123A", "456B", "789C", "*0#D")

DTMF_FREQUENCIES: dict[str, tuple[int, int]] = {
    key: (_ROWS[r], _COLS[c]) for r, keys in enumerate(_KEYPAD) for c, key in enumerate(keys)
}
"""Each DTMF key's (row, column) frequencies in Hz (ITU-T Q.23): ``"1"`` is (697, 1209)."""

_FADE_S = 0.005


def silence(seconds: float, rate: int = 8000) -> Audio:
    """``seconds`` of digital silence at ``rate`` Hz, as :meth:`Audio.silence`.

    Raises:
        ValueError: when ``seconds`` is negative or ``rate`` is not a positive int.
    """
    return Audio.silence(seconds, rate)


def beep(
    seconds: float = 0.25, freq_hz: float = 1000, rate: int = 8000, level: float = 0.3
) -> Audio:
    """A sine tone of ``freq_hz`` Hz lasting ``seconds`` at ``rate`` Hz.

    ``level`` is the peak amplitude as a fraction of full scale (0–1). The first and last
    5 ms (at most a quarter of the tone each) fade in and out, so the beep does not click.

    Raises:
        ValueError: when ``seconds`` is negative, ``rate`` is not a positive int, ``level``
            is outside 0–1, or ``freq_hz`` is not below the Nyquist frequency ``rate / 2``.
    """
    return Audio(_tone(seconds, (freq_hz,), rate, level), rate)


def dtmf_tone(digit: str, seconds: float = 0.1, rate: int = 8000, level: float = 0.3) -> Audio:
    """The DTMF tone of key ``digit`` (``0-9``, ``*``, ``#``, ``A-D``) for ``seconds``.

    The sum of the key's row and column sines (:data:`DTMF_FREQUENCIES`), at ``rate`` Hz,
    each at half of ``level`` (peak fraction of full scale, 0–1), with 5 ms fades.

    Raises:
        ValueError: when ``digit`` is not a DTMF key, or as :func:`beep` for the others.
    """
    key = digit.upper() if isinstance(digit, str) else digit
    if key not in DTMF_FREQUENCIES:
        raise ValueError(f"DTMF digit must be one of 0-9 * # A-D, got {digit!r}")
    return Audio(_tone(seconds, DTMF_FREQUENCIES[key], rate, level), rate)


def _tone(
    seconds: float, freqs: tuple[float, ...], rate: int, level: float
) -> npt.NDArray[np.int16]:
    n = _sample_count(seconds, rate)
    if not 0 <= level <= 1:
        raise ValueError(f"level must be between 0 and 1 (fraction of full scale), got {level!r}")
    for f in freqs:
        if not 0 < f < rate / 2:
            raise ValueError(f"a {f} Hz tone needs a sample rate above {2 * f} Hz, got {rate}")
    t = np.arange(n) / rate
    wave = np.zeros(n)
    for f in freqs:
        wave += np.sin(2 * np.pi * f * t)
    wave *= level / len(freqs)
    fade = min(round(_FADE_S * rate), n // 4)
    if fade:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)  # raised cosine, 0 → 1
        wave[:fade] *= ramp
        wave[n - fade :] *= ramp[::-1]
    pcm: npt.NDArray[np.int16] = np.rint(wave * 32767).astype(np.int16)
    return pcm
