"""Resampling keeps what fits below the new Nyquist frequency and removes what does not."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from callflow.audio import resample


def sine(
    freq_hz: float, rate: int, seconds: float = 1.0, amplitude: float = 10000
) -> npt.NDArray[np.int16]:
    t = np.arange(round(seconds * rate)) / rate
    return np.rint(amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def rms(x: npt.NDArray[np.int16]) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def peak_hz(x: npt.NDArray[np.int16], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


def test_1khz_sine_survives_8k_16k_8k() -> None:
    original = sine(1000, 8000)
    up = resample(original, 8000, 16000)
    assert up.dtype == np.int16
    assert len(up) == 16000
    assert peak_hz(up, 16000) == pytest.approx(1000, abs=2)
    assert rms(up) == pytest.approx(rms(original), rel=0.01)
    back = resample(up, 16000, 8000)
    assert len(back) == 8000
    assert peak_hz(back, 8000) == pytest.approx(1000, abs=2)
    middle = slice(200, -200)  # away from the filter's edge effects
    error = back[middle].astype(np.int32) - original[middle]
    assert np.max(np.abs(error)) < 100  # < 1 % of the 10 000 amplitude
    assert rms(back) == pytest.approx(rms(original), rel=0.01)


def test_6khz_tone_is_removed_not_aliased_going_to_8k() -> None:
    tone = sine(6000, 16000)
    down = resample(tone, 16000, 8000)
    assert len(down) == 8000
    # Without a low-pass filter, 6 kHz would fold back to 2 kHz at full strength.
    assert rms(down[200:-200]) < rms(tone) / 100  # at least 40 dB down


def test_any_rate_to_stream_rates() -> None:
    tone = sine(440, 44100)
    for rate in (8000, 16000):
        out = resample(tone, 44100, rate)
        assert len(out) == rate
        assert peak_hz(out, rate) == pytest.approx(440, abs=2)


def test_equal_rates_and_empty_input() -> None:
    x = sine(1000, 8000, 0.01)
    assert resample(x, 8000, 8000) is x
    empty = resample(np.zeros(0, dtype=np.int16), 8000, 16000)
    assert empty.dtype == np.int16
    assert empty.shape == (0,)


def test_full_scale_input_is_clipped_not_wrapped() -> None:
    square = np.tile(np.array([32767] * 20 + [-32768] * 20, dtype=np.int16), 100)
    out = resample(square, 8000, 16000)
    assert out.dtype == np.int16
    # Ringing overshoots full scale; it must saturate, never wrap to the other sign.
    periods = out.reshape(-1, 80)[1:-1]  # 80 samples per period at 16 kHz
    assert np.all(periods[:, 5:35] > 0)
    assert np.all(periods[:, 45:75] < 0)
    assert out.max() == 32767
    assert out.min() == -32768


@pytest.mark.parametrize(("from_rate", "to_rate"), [(0, 8000), (8000, -1), (8000, 8000.5)])
def test_bad_rates_raise(from_rate: int, to_rate: int) -> None:
    with pytest.raises(ValueError, match="positive int"):
        resample(np.zeros(4, dtype=np.int16), from_rate, to_rate)


def test_non_int16_raises() -> None:
    with pytest.raises(TypeError, match="int16"):
        resample(np.zeros(4), 8000, 16000)  # type: ignore[arg-type]
