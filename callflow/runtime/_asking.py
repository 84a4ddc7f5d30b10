"""The DSL's input half of :class:`~callflow.runtime.Call`: ``gather``, ``ask``, ``menu``,
``record`` and ``wait_speech`` (the algorithms are in ``_collect.py``, speech in
``_speech.py``). ``Call`` inherits them; a flow never uses :class:`Asking` by itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from callflow.runtime import _collect, _speech
from callflow.runtime._inbound import Inbound
from callflow.runtime._playback import Player
from callflow.runtime._results import (
    BargeIn,
    Digits,
    GatherResult,
    Invalid,
    NoInput,
    Recording,
    Speech,
)
from callflow.runtime._sources import AudioSource
from callflow.runtime._vad import VadSettings

if TYPE_CHECKING:
    from callflow.runtime._call import Call

T = TypeVar("T")


class Asking(Player, Inbound):
    """Taking the caller's answers: keys, speech and recordings (see :class:`Call`)."""

    if not TYPE_CHECKING:  # (mypy would take () as this class's only attributes)
        __slots__ = ()
    _SLOTS: tuple[str, ...] = ()

    def _as_call(self) -> Call:
        # Only Call is ever built, and _collect's algorithms take the whole Call.
        return cast("Call", self)

    async def gather(
        self,
        prompt: AudioSource | Sequence[AudioSource] | None = None,
        *,
        max_digits: int = 99,
        min_digits: int = 1,
        timeout: float = 5.0,
        digit_timeout: float = 2.0,
        finish_on_key: str = "#",
        valid_digits: str = "1234567890*#",
        retries: int = 1,
        no_input: AudioSource | Sequence[AudioSource] | None = None,
        invalid: AudioSource | Sequence[AudioSource] | None = None,
        barge_in: bool | str | BargeIn = True,
        sensitive: bool = False,
        finish_timeout: float | None = None,
        flush: bool = False,
        input: str = "dtmf",
        hints: Sequence[str] = (),
        min_confidence: float = 0.0,
        closed: bool = False,
    ) -> GatherResult:
        """Collect DTMF digits, as Plivo's ``<GetDigits>`` does (same names and defaults), or
        keys or speech, as Plivo's ``<GetInput>`` does (``input="dtmf speech"``).

        Plays ``prompt`` with ``say(prompt, barge_in=barge_in)``: a barge-in key pressed
        while it plays stops it and counts toward the input, and a pending barge-in key
        (type-ahead) skips it at once. Then waits ``timeout`` seconds for the first key and
        ``digit_timeout`` seconds for each next one. Input ends at ``max_digits`` keys, at
        ``finish_on_key`` (not part of the value; ``""`` for none) or when a wait runs out.

        A finish key right after a full entry belongs to it: with ``max_digits=4``, ``1234#``
        is one entry, and the ``#`` becomes neither the next input nor a barge-in. It is taken
        when it is the next key already pending, or when it is the next key pressed within
        ``finish_timeout`` seconds of the entry's end (VoiceXML's ``termtimeout``, without
        the wait: the gather returns at once, as Plivo's does at ``numDigits``).

        Args:
            prompt: what to play first; a list gives one prompt per attempt (the last
                repeats).
            max_digits: Plivo ``numDigits``, default 99.
            min_digits: fewer keys give ``Invalid``.
            timeout: seconds for the first key after the prompt (Plivo default 5).
            digit_timeout: seconds between keys (Plivo ``digitTimeout``, default 2).
            finish_on_key: Plivo ``finishOnKey``, default ``#``.
            valid_digits: Plivo ``validDigits``, default ``1234567890*#``; an input holding
                another key is ``Invalid``, judged once the input has ended (finish key,
                ``max_digits`` or a timeout), as Plivo does.
            retries: Plivo ``retries``: how many attempts in all (at least 1, default 1).
            no_input: played before the next attempt after ``NoInput``; a list escalates
                per event, as VoiceXML's ``count``: the *k*-th ``NoInput`` plays entry *k*.
            invalid: played before the next attempt after ``Invalid``; a list escalates the
                same way, counted on its own.
            barge_in: what stops the prompts, as ``say``'s ``barge_in``: ``True`` (any key,
                the default: Plivo's nested prompts stop at a key), ``"12"`` (those keys),
                ``"speech"``, a :class:`BargeIn`, or ``False``.
            sensitive: keep the digits out of every log line (the result's ``repr`` masks
                them too), for PINs and card numbers.
            finish_timeout: seconds after a full entry within which the finish key still
                belongs to it; ``None`` (the default) is ``digit_timeout``, ``0`` turns it
                off (no Plivo counterpart: Plivo ignores keys beyond ``numDigits``).
            flush: discard the type-ahead keys first, so the input starts from an empty
                buffer (FreeClimb's ``flushBuffer``).
            input: ``"dtmf"`` (keys), ``"speech"`` or ``"dtmf speech"`` (Plivo ``inputType``):
                with speech, the caller's audio goes to the flow's recognizer (``stt=``, the
                offline one by default) from the start of the prompt, which speech also
                interrupts; whichever of a key or speech comes first answers, and a key
                pressed while the caller is still speaking ends the recognition at once and
                wins. A recognition that matches nothing is ``Invalid`` (counted and
                re-prompted as a bad key is); no key and no speech within ``timeout`` is
                ``NoInput``.
            hints: the phrases expected (the offline recognizer accepts only these; a cloud
                one is biased toward them). Required with speech and the offline recognizer.
            min_confidence: a recognition below this confidence (0-1) is ``Invalid``.
            closed: only ``hints`` are answers: speech holding none of them is ``Invalid``
                (otherwise a cloud recognizer's text is returned as heard). A hint found in
                the text is returned as written here either way.

        Returns:
            ``Digits(value)``, ``Speech(text, confidence)``, ``NoInput()`` or
            ``Invalid(value)``: the last attempt's outcome.

        Raises:
            ValueError: arguments Plivo would refuse; a negative ``finish_timeout``; an unknown
                ``input``, or speech with no ``hints`` for the offline recognizer.
            callflow.voice.SttError: a hint the recognizer cannot say.
            CallEnded: the call is over.
        """
        rules = _collect.DigitRules(
            max_digits=max_digits,
            min_digits=min_digits,
            timeout=timeout,
            digit_timeout=digit_timeout,
            finish_on_key=finish_on_key.upper(),
            valid_digits=valid_digits.upper(),
            barge_in=barge_in,
            sensitive=sensitive,
            finish_timeout=digit_timeout if finish_timeout is None else finish_timeout,
            flush=flush,
        )
        inputs = _speech.parse_input(input)
        speech = None
        if "speech" in inputs:
            speech = _speech.SpeechRules(
                hints=tuple(hints),
                keys="dtmf" in inputs,
                min_confidence=min_confidence,
                closed=closed,
            )
        return await _collect.gather(
            self._as_call(),
            prompt,
            rules,
            retries=retries,
            no_input=no_input,
            invalid=invalid,
            speech=speech,
        )

    async def ask(
        self,
        prompt: AudioSource | Sequence[AudioSource],
        choices: Sequence[str] | Mapping[str, str],
        *,
        retries: int = 3,
        timeout: float = 5.0,
        no_input: AudioSource | Sequence[AudioSource] | None = None,
        invalid: AudioSource | Sequence[AudioSource] | None = None,
        barge_in: bool = True,
        min_confidence: float = 0.0,
    ) -> Digits | Speech | NoInput | Invalid:
        """Press or say: one of ``choices``, by key or by voice, with counted re-prompts.

        ``choices`` is a list of phrases (key ``1`` for the first, ``2`` for the second, …,
        up to nine) or a mapping of single DTMF keys to phrases (``{"1": "sales", "0":
        "operator"}``). The caller presses a choice's key or says its phrase; the answer is
        ``Digits(key)`` or ``Speech(phrase, confidence)`` (the phrase as given here). A key
        that is no choice, or words that match none, are ``Invalid``; ``retries``,
        ``no_input`` and ``invalid`` work as in :meth:`menu`. This is :meth:`gather` with
        ``input="dtmf speech"``, ``max_digits=1`` and the phrases as ``hints``.

        Returns:
            ``Digits(key)``, ``Speech(phrase, confidence)``, or ``NoInput()`` /
            ``Invalid(value)`` after the last attempt.

        Raises:
            ValueError: no choice, more than nine listed, or a key that is not one DTMF key.
            callflow.voice.SttError: a phrase the recognizer cannot say.
            CallEnded: the call is over.
        """
        keyed, phrases = _speech.choice_rules(choices)
        result = await self.gather(
            prompt,
            max_digits=1,
            timeout=timeout,
            digit_timeout=timeout,
            finish_on_key="",
            valid_digits="".join(keyed),
            retries=retries,
            no_input=no_input,
            invalid=invalid,
            barge_in=barge_in,
            input="dtmf speech",
            hints=phrases,
            min_confidence=min_confidence,
            closed=True,
        )
        return result

    async def menu(
        self,
        prompt: AudioSource | Sequence[AudioSource],
        choices: Mapping[str, T],
        *,
        retries: int = 3,
        timeout: float = 5.0,
        no_input: AudioSource | Sequence[AudioSource] | None = None,
        invalid: AudioSource | Sequence[AudioSource] | None = None,
        barge_in: bool | str | BargeIn = True,
        flush: bool = False,
    ) -> T | Any | NoInput | Invalid:
        """One key among ``choices``, with counted, escalating prompts (VoiceXML ``<menu>``).

        ``prompt``, ``no_input`` and ``invalid`` may be lists (the last entry repeats), like
        VoiceXML's ``count``: attempt *n* plays entry *n* of ``prompt``; the *k*-th
        ``NoInput`` plays entry *k* of ``no_input`` and the *k*-th ``Invalid`` entry *k* of
        ``invalid``, counted per event. A key not in ``choices`` is ``Invalid``.

        Args:
            choices: single DTMF keys to values; a value that is a :class:`~callflow.Flow` or
                any callable but a class (an ``async def f(call)``, a lambda, a
                ``functools.partial``) is a sub-flow: it is called with the call, its result
                awaited when awaitable, and returned.
            retries: attempts in all (default 3; Plivo's ``retries`` defaults to 1, but this
                is VoiceXML's ``<menu>``, not a Plivo element, and callers expect a few tries).
            timeout: seconds to wait for the key after each prompt.
            barge_in: what stops the prompts, as ``gather``'s.
            flush: discard the type-ahead keys first.

        Returns:
            The chosen value (or the sub-flow's result), or ``NoInput()`` / ``Invalid()``
            after the last attempt.

        Raises:
            ValueError: a choice key that is not one DTMF key.
            CallEnded: the call is over.
        """
        return await _collect.menu(
            self._as_call(),
            prompt,
            {k.upper(): v for k, v in choices.items()},
            retries=retries,
            timeout=timeout,
            no_input=no_input,
            invalid=invalid,
            barge_in=barge_in,
            flush=flush,
        )

    async def record(
        self,
        *,
        max_s: float = 60.0,
        silence_s: float = 15.0,
        finish_on_key: str = "#",
        beep: bool = True,
        vad: VadSettings | None = None,
    ) -> Recording:
        """Record the caller (a voicemail), after a beep.

        Stops after ``max_s`` seconds, after ``silence_s`` seconds of continuous silence
        (counted from the beep, so a caller who never speaks ends it too), when a key in
        ``finish_on_key`` is pressed from the beep on (that key is consumed), or when the caller
        hangs up: a hangup ends the recording, not the method, so a voicemail left by
        hanging up is kept.

        The defaults are Plivo ``<Record>``'s: ``maxLength`` 60 s, ``timeout`` 15 s of
        silence, ``finishOnKey`` ``#``, ``playBeep`` true (docs.plivo.com, XML reference,
        Record). A voicemail prompt usually wants a shorter ``silence_s`` (3-5 s).

        Returns:
            A :class:`Recording`: ``audio`` (int16 at the stream rate), ``reason``
            (``"max_length"``, ``"silence"``, ``"key"``, ``"hangup"``), ``key``, ``speech``.

        Raises:
            ValueError: non-positive durations; a ``finish_on_key`` character that is not a
                DTMF key.
            CallEnded: the call was already over.
        """
        self._raise_if_ended()
        return await _collect.record(
            self._as_call(),
            max_s=max_s,
            silence_s=silence_s,
            finish_on_key=finish_on_key.upper(),
            play_beep=beep,
            vad=vad,
        )

    async def wait_speech(self, *, vad: VadSettings | None = None) -> None:
        """Return when the caller starts speaking (the VAD: frames WebRTC's model calls speech,
        or with ``model="energy"`` a level above ``vad.threshold_dbfs``, for
        ``vad.min_speech_s``, so a cough does not count).
        Bound it with ``trio.move_on_after``.

        Raises:
            CallEnded: the call is over.
        """
        await _collect.wait_speech(self._as_call(), vad)
