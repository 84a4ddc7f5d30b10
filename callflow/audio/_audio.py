"""The :class:`Audio` value, its per-format encode cache, and prompt folders."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, final

import attrs
import numpy as np

from callflow.audio._chunk import MAX_B64, chunk_payloads
from callflow.audio._codec import PCM, as_pcm, decode, encode
from callflow.audio._resample import resample
from callflow.audio._wav import load_wav, save_wav
from callflow.protocol import Format

__all__ = ["Audio", "PromptFolder", "encode_count", "read_wav", "write_wav"]

_encode_count = 0


def encode_count() -> int:
    """How many times any :class:`Audio` has encoded itself for a format, since import.

    Each count is one miss of the per-instance cache behind :meth:`Audio.encoded` (and so
    :meth:`Audio.payloads`): a resample (when the rates differ) plus a codec pass. Compare
    the value before and after some calls to prove that a prompt played many times was
    encoded once. :meth:`Audio.from_bytes` seeds its own format's cache and counts nothing.
    """
    return _encode_count


def _frozen_samples(value: Any) -> PCM:
    """``value`` as a read-only 1-D int16 array no one else can write to."""
    samples = as_pcm(value, "samples")
    base = samples.base
    # A read-only array is shared as is only when nothing can write to its memory: it owns
    # it, or it is a view over immutable bytes. Anything else is copied first.
    if samples.flags.writeable or not (base is None or isinstance(base, bytes)):
        samples = samples.copy()
    samples.flags.writeable = False
    return samples


def _check_rate(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise ValueError(f"sample_rate must be a positive int in Hz, got {value!r}")
    return int(value)


@attrs.define
class _Cache:
    """Per-instance memo. Trio runs one thread and none of this awaits, so a plain dict is
    race-free; from several threads a miss may be computed twice, harmlessly."""

    encoded: dict[Format, bytes] = attrs.field(factory=dict)
    payloads: dict[tuple[Format, int], tuple[str, ...]] = attrs.field(factory=dict)
    resampled: dict[int, PCM] = attrs.field(factory=dict)
    hash: int | None = None


@final
@attrs.frozen(eq=False, repr=False)
class Audio:
    """Immutable mono audio: 1-D int16 PCM samples at a sample rate.

    ``Audio(samples, sample_rate)`` takes a 1-D numpy int16 array (copied unless it is
    already read-only and unshared) and a rate in Hz. ``samples`` is read-only
    (``flags.writeable`` is false). Two values are equal when their rates and samples are.

    What a call plays is computed once per value and format and cached on the instance:
    :meth:`encoded` and :meth:`payloads`. Build prompts once (at import, with
    :meth:`folder` or :meth:`from_wav`) and share them between calls: the same prompt played
    to ten thousand callers is encoded once (see :func:`encode_count`).

    Raises (constructor):
        TypeError: when ``samples`` is not a numpy int16 array.
        ValueError: when ``samples`` is not 1-D or ``sample_rate`` is not a positive int.
    """

    samples: PCM = attrs.field(converter=_frozen_samples)
    """The samples: a read-only 1-D int16 array."""
    sample_rate: int = attrs.field(converter=_check_rate)
    """Samples per second (Hz)."""
    _cache: _Cache = attrs.field(init=False, factory=_Cache, eq=False, repr=False)

    def __init_subclass__(cls, **kwargs: object) -> None:
        raise TypeError("Audio is final: wrap it rather than subclass it")

    # -- constructors ------------------------------------------------------------------------

    @classmethod
    def from_wav(cls, path: str | os.PathLike[str]) -> Audio:
        """The audio of a WAV file, mixed down to mono, at the file's own sample rate.

        Reads 8/16/24/32-bit integer PCM, 32/64-bit float and μ-law WAVs with any number of
        channels (averaged). Conversion to a stream's rate happens in :meth:`encoded`.

        Raises:
            AudioError: naming the file, when it is not a WAV this reader understands.
            OSError: when it cannot be opened.
        """
        samples, rate = load_wav(path)
        return cls(samples, rate)

    @classmethod
    def from_bytes(cls, data: bytes, fmt: Format) -> Audio:
        """The audio in raw wire bytes ``data`` of ``fmt`` (no WAV header), at its rate.

        ``encoded(fmt)`` then returns ``data`` itself, with no encoding.

        Raises:
            ValueError: for L16 ``data`` of odd length.
        """
        audio = cls(decode(data, fmt), fmt.sample_rate)
        audio._cache.encoded[fmt] = bytes(data)
        return audio

    @classmethod
    def silence(cls, seconds: float, rate: int = 8000) -> Audio:
        """``seconds`` of digital silence at ``rate`` Hz (``round(seconds * rate)`` samples).

        Raises:
            ValueError: when ``seconds`` is negative or ``rate`` is not a positive int.
        """
        return cls(np.zeros(_sample_count(seconds, rate), dtype=np.int16), rate)

    @classmethod
    def concat(cls, parts: Iterable[Audio], *, sample_rate: int | None = None) -> Audio:
        """One value playing ``parts`` one after another.

        The result is at ``sample_rate`` Hz, by default the first part's rate; parts at
        other rates are resampled first.

        Raises:
            ValueError: when ``parts`` is empty and no ``sample_rate`` is given.
            TypeError: when a part is not an :class:`Audio`.
        """
        items = list(parts)
        for item in items:
            if not isinstance(item, Audio):
                raise TypeError(f"Audio.concat takes Audio values, got {type(item).__name__}")
        if sample_rate is None:
            if not items:
                raise ValueError("Audio.concat of no parts needs a sample_rate")
            sample_rate = items[0].sample_rate
        rate = _check_rate(sample_rate)
        pieces = [item._samples_at(rate) for item in items]
        return cls(np.concatenate(pieces) if pieces else np.zeros(0, np.int16), rate)

    @staticmethod
    def folder(anchor: str | os.PathLike[str], subdir: str = "") -> PromptFolder:
        """The WAV prompts in ``subdir`` beside ``anchor``, by file stem.

        ``anchor`` is a file (typically the flow module's ``__file__``) or a directory;
        ``subdir`` is relative to it (to the file's directory). ``Audio.folder(__file__,
        "prompts").welcome`` is ``prompts/welcome.wav`` as an :class:`Audio`.

        Raises:
            FileNotFoundError: when the folder does not exist (so a typo fails at import).
        """
        base = Path(anchor)
        if not base.is_dir():
            base = base.parent
        return PromptFolder(base / subdir)

    # -- properties --------------------------------------------------------------------------

    @property
    def duration_s(self) -> float:
        """Length in seconds: ``len(self) / sample_rate``."""
        return len(self.samples) / self.sample_rate

    def __len__(self) -> int:
        """Length in samples."""
        return len(self.samples)

    # -- operations --------------------------------------------------------------------------

    def resampled(self, rate: int) -> Audio:
        """The same audio at ``rate`` Hz (``self`` when the rate is already ``rate``).

        Raises:
            ValueError: when ``rate`` is not a positive int.
        """
        rate = _check_rate(rate)
        if rate == self.sample_rate:
            return self
        return Audio(self._samples_at(rate), rate)

    def encoded(self, fmt: Format) -> bytes:
        """The raw wire bytes of this audio in ``fmt``: resampled to ``fmt.sample_rate`` (Hz)
        and encoded (μ-law, or little-endian L16), with no WAV header.

        Cached per format on this instance: only the first call per format encodes (and
        counts in :func:`encode_count`).
        """
        cached = self._cache.encoded.get(fmt)
        if cached is None:
            global _encode_count
            _encode_count += 1
            cached = encode(self._samples_at(fmt.sample_rate), fmt)
            self._cache.encoded[fmt] = cached
        return cached

    def payloads(self, fmt: Format, *, max_b64: int = MAX_B64) -> tuple[str, ...]:
        """The base64 ``payload`` strings of successive ``playAudio`` messages playing this.

        Each is at most ``max_b64`` characters (Plivo recommends ≤ 16 KB of base64 per
        ``playAudio``, PROTOCOL.md §1, §4) and cut on whole 20 ms frames, hence whole
        samples: see :func:`chunk_payloads` for the sizes. Joined and decoded, they are
        :meth:`encoded`. Cached per ``(fmt, max_b64)`` on this instance: later calls return
        the same tuple object.

        Raises:
            ValueError: when ``max_b64`` cannot hold one sample.
        """
        key = (fmt, max_b64)
        cached = self._cache.payloads.get(key)
        if cached is None:
            cached = chunk_payloads(self.encoded(fmt), fmt, max_b64)
            self._cache.payloads[key] = cached
        return cached

    def _samples_at(self, rate: int) -> PCM:
        if rate == self.sample_rate:
            return self.samples
        cached = self._cache.resampled.get(rate)
        if cached is None:
            cached = resample(self.samples, self.sample_rate, rate)
            cached.flags.writeable = False
            self._cache.resampled[rate] = cached
        return cached

    def __add__(self, other: object) -> Audio:
        """``self`` then ``other``, at ``self``'s rate (``other`` is resampled if needed)."""
        if not isinstance(other, Audio):
            return NotImplemented
        return Audio.concat([self, other])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Audio):
            return NotImplemented
        return self.sample_rate == other.sample_rate and np.array_equal(self.samples, other.samples)

    def __hash__(self) -> int:
        if self._cache.hash is None:
            self._cache.hash = hash((self.sample_rate, self.samples.tobytes()))
        return self._cache.hash

    def __repr__(self) -> str:
        return f"<Audio {self.duration_s:.3f} s at {self.sample_rate} Hz>"


def _sample_count(seconds: float, rate: int) -> int:
    _check_rate(rate)
    if not seconds >= 0:  # also rejects NaN
        raise ValueError(f"seconds must be >= 0, got {seconds!r}")
    return round(seconds * rate)


@final
class PromptFolder:
    """The ``*.wav`` files of one directory as :class:`Audio` values, by file stem.

    ``folder.welcome`` and ``folder["welcome"]`` are ``welcome.wav``, read on first use and
    then cached for the life of the folder object (so also their encodings). ``name in
    folder``, ``iter(folder)`` (the stems, sorted) and :meth:`load_all` tell what is there.

    Raises (constructor):
        FileNotFoundError: when ``path`` is not a directory.
    """

    __slots__ = ("_cache", "_path")

    def __init_subclass__(cls, **kwargs: object) -> None:
        raise TypeError("PromptFolder is final")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        if not self._path.is_dir():
            raise FileNotFoundError(f"prompt folder {self._path} does not exist")
        self._cache: dict[str, Audio] = {}

    @property
    def path(self) -> Path:
        """The directory."""
        return self._path

    def names(self) -> list[str]:
        """The stems of the ``.wav`` files in the directory now, sorted."""
        return sorted(p.stem for p in self._path.glob("*.wav") if p.is_file())

    def load_all(self) -> dict[str, Audio]:
        """Every prompt, read now (to fail at startup rather than mid-call), by stem.

        Raises:
            AudioError: when a file is not a readable WAV.
        """
        return {name: self[name] for name in self.names()}

    def __getitem__(self, name: str) -> Audio:
        """The prompt ``name`` (``name.wav``).

        Raises:
            KeyError: when there is no such file; the message lists the available prompts.
            AudioError: when the file is not a readable WAV.
        """
        audio = self._cache.get(name)
        if audio is None:
            file = self._path / f"{name}.wav"
            if "/" in name or os.sep in name or not file.is_file():
                raise KeyError(self._missing(name))
            audio = self._cache[name] = Audio.from_wav(file)
        return audio

    def __getattr__(self, name: str) -> Audio:
        """The prompt ``name`` (``name.wav``), as :meth:`__getitem__`.

        Raises:
            AttributeError: when there is no such file; the message lists the available
                prompts.
        """
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(self._missing(name)) from None

    def _missing(self, name: str) -> str:
        available = ", ".join(self.names()) or "none"
        return f"no prompt {name!r} ({name}.wav) in {self._path}; available: {available}"

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.names()))

    def __repr__(self) -> str:
        return f"<PromptFolder {self._path}>"


def read_wav(path: str | os.PathLike[str]) -> Audio:
    """The audio of a WAV file as mono :class:`Audio`: same as :meth:`Audio.from_wav`.

    Raises:
        AudioError: naming the file, when it is not a WAV this reader understands.
        OSError: when it cannot be opened.
    """
    return Audio.from_wav(path)


def write_wav(path: str | os.PathLike[str], audio: Audio) -> None:
    """Write ``audio`` to ``path`` as a 16-bit mono PCM WAV at ``audio.sample_rate``.

    Raises:
        OSError: when the file cannot be written.
    """
    save_wav(path, audio.samples, audio.sample_rate)
