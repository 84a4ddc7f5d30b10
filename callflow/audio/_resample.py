"""Sample-rate conversion with soxr (libsoxr's band-limited, anti-aliased resampler)."""

from __future__ import annotations

import numpy as np
import soxr

from callflow.audio._codec import PCM, as_pcm

__all__ = ["resample"]


def _check_rate(rate: int, what: str) -> None:
    if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
        raise ValueError(f"{what} must be a positive int in Hz, got {rate!r}")


def resample(pcm: PCM, from_rate: int, to_rate: int) -> PCM:
    """1-D int16 ``pcm`` at ``from_rate`` Hz, converted to ``to_rate`` Hz.

    Uses ``soxr.resample`` at its "HQ" quality: a low-pass filter removes everything above the
    lower rate's Nyquist frequency before downsampling, so a 6 kHz tone does not fold back to
    2 kHz going from 16 kHz to 8 kHz. The output has ``len(pcm) * to_rate / from_rate``
    samples, rounded, and is time-aligned with the input (soxr compensates the filter delay);
    values are rounded and clipped to int16.
    Equal rates return ``pcm`` itself (as an int16 array), not a copy.

    Raises:
        TypeError: when ``pcm`` is not an int16 array.
        ValueError: when ``pcm`` is not 1-D or a rate is not a positive int.
    """
    samples = as_pcm(pcm)
    _check_rate(from_rate, "from_rate")
    _check_rate(to_rate, "to_rate")
    if from_rate == to_rate:
        return samples
    if samples.size == 0:
        return np.zeros(0, dtype=np.int16)
    out = soxr.resample(samples, from_rate, to_rate, quality="HQ")
    return np.asarray(out, dtype=np.int16)
