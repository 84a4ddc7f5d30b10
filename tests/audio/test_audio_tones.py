"""Silence, beeps and DTMF tones: right length, right frequencies, no clicks."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from callflow.audio import DTMF_FREQUENCIES, Audio, beep, dtmf_tone, silence

KEYPAD = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}  # fmt: skip


def spectrum(
    x: npt.NDArray[np.int16], rate: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    n = 16 * rate  # zero-padded to 1/16 Hz bins
    power: npt.NDArray[np.float64] = (
        np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x)), n)) ** 2
    )
    freqs = np.fft.rfftfreq(n, 1 / rate).astype(np.float64)
    return freqs, power


def test_dtmf_table_is_the_standard_keypad() -> None:
    assert DTMF_FREQUENCIES == KEYPAD


@pytest.mark.parametrize("digit", list(KEYPAD))
def test_dtmf_energy_is_at_the_row_and_column_frequencies(digit: str) -> None:
    tone = dtmf_tone(digit)
    assert tone.sample_rate == 8000
    assert len(tone) == 800  # 0.1 s
    freqs, power = spectrum(tone.samples, 8000)
    low, high = KEYPAD[digit]
    low_band = (freqs > 600) & (freqs < 1000)
    high_band = (freqs > 1100) & (freqs < 1700)
    assert freqs[low_band][np.argmax(power[low_band])] == pytest.approx(low, abs=3)
    assert freqs[high_band][np.argmax(power[high_band])] == pytest.approx(high, abs=3)
    near = (np.abs(freqs - low) < 40) | (np.abs(freqs - high) < 40)
    assert power[near].sum() > 0.95 * power.sum()  # nearly all the energy is in the two lobes


def test_dtmf_at_16k_and_lowercase() -> None:
    tone = dtmf_tone("d", seconds=0.2, rate=16000)
    assert len(tone) == 3200
    freqs, power = spectrum(tone.samples, 16000)
    assert freqs[np.argmax(power * (freqs < 1000))] == pytest.approx(941, abs=3)


@pytest.mark.parametrize("digit", ["E", "", "12", "x"])
def test_dtmf_rejects_other_keys(digit: str) -> None:
    with pytest.raises(ValueError, match="DTMF digit"):
        dtmf_tone(digit)


def test_beep_frequency_level_and_fades() -> None:
    b = beep()
    assert b.sample_rate == 8000
    assert len(b) == 2000  # 0.25 s
    freqs, power = spectrum(b.samples, 8000)
    assert freqs[np.argmax(power)] == pytest.approx(1000, abs=2)
    assert np.max(np.abs(b.samples)) == pytest.approx(0.3 * 32767, rel=0.01)
    # Fades: starts and ends near zero; the first 5 samples stay under 10 % of the peak.
    assert b.samples[0] == 0
    assert abs(int(b.samples[-1])) < 100
    assert np.max(np.abs(b.samples[:5].astype(int))) < 0.3 * 32767 * 0.1


def test_beep_options() -> None:
    b = beep(seconds=0.5, freq_hz=440, rate=16000, level=1.0)
    assert len(b) == 8000
    assert b.samples.max() <= 32767
    assert np.max(np.abs(b.samples)) > 32000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"freq_hz": 4000}, "sample rate above"),
        ({"level": 1.5}, "level"),
        ({"seconds": -1}, "seconds"),
        ({"rate": 0}, "positive int"),
    ],
)
def test_beep_rejects_bad_arguments(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        beep(**kwargs)  # type: ignore[arg-type]


def test_silence() -> None:
    s = silence(0.5)
    assert s == Audio.silence(0.5, 8000)
    assert len(s) == 4000
    assert not s.samples.any()
    assert len(silence(0.02, 16000)) == 320
    assert len(silence(0)) == 0
    with pytest.raises(ValueError, match="seconds"):
        silence(float("nan"))


def test_very_short_tone_still_fades() -> None:
    t = dtmf_tone("5", seconds=0.004)  # 32 samples: fades of a quarter each
    assert len(t) == 32
    assert t.samples[0] == 0
