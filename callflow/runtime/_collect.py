"""Collecting input: ``gather`` (Plivo GetDigits), ``menu`` (VoiceXML menus), ``record`` and
``wait_speech``. Each is a function of the :class:`Call`; ``Call``'s methods document them."""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import numpy as np
import trio

from callflow.audio import Audio, beep
from callflow.runtime._errors import CallEnded
from callflow.runtime._results import (
    DTMF_KEYS,
    BargeIn,
    Digits,
    GatherResult,
    Invalid,
    NoInput,
    Recording,
    Speech,
)
from callflow.runtime._sync import Signal
from callflow.runtime._vad import Vad, VadSettings
from callflow.runtime._watch import TriggerWatch
from callflow.voice import Text

if TYPE_CHECKING:
    from callflow.runtime._call import Call

log = logging.getLogger("callflow.call")

T = TypeVar("T")


def _nth(prompts: Any, count: int) -> Any:
    """Entry ``count`` (0-based) of an escalating list, its last entry repeating; a single
    prompt is every entry."""
    if prompts is None or isinstance(prompts, Audio | Text | str | bytes | bytearray | memoryview):
        return prompts
    if isinstance(prompts, Sequence):
        return prompts[min(count, len(prompts) - 1)] if prompts else None
    return prompts


def _barge_in(spec: bool | str | BargeIn) -> BargeIn | None:
    return BargeIn.of(spec)


@attrs.frozen(kw_only=True)
class DigitRules:
    """One attempt's input rules: Plivo GetDigits' parameters (see :meth:`Call.gather`).

    Raises:
        ValueError: a combination Plivo would refuse.
    """

    max_digits: int
    min_digits: int
    timeout: float
    digit_timeout: float
    finish_on_key: str
    valid_digits: str
    barge_in: BargeIn | None = attrs.field(converter=_barge_in)
    sensitive: bool
    finish_timeout: float = 0.0
    flush: bool = False

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.min_digits <= self.max_digits:
            raise ValueError(
                f"need 1 <= min_digits <= max_digits, got {self.min_digits}, {self.max_digits}"
            )
        if len(self.finish_on_key) > 1 or (
            self.finish_on_key and self.finish_on_key not in DTMF_KEYS
        ):
            raise ValueError(
                f"finish_on_key must be one DTMF key or '', not {self.finish_on_key!r}"
            )
        if set(self.valid_digits) - set(DTMF_KEYS):
            raise ValueError(f"valid_digits must be DTMF keys, not {self.valid_digits!r}")
        if self.timeout <= 0 or self.digit_timeout <= 0:
            raise ValueError("timeout and digit_timeout are positive seconds")
        if not self.finish_timeout >= 0:
            raise ValueError(f"finish_timeout is seconds, 0 or more, not {self.finish_timeout}")


async def gather(
    call: Call,
    prompt: Any,
    rules: DigitRules,
    *,
    retries: int,
    no_input: Any,
    invalid: Any,
    speech: Any = None,
) -> GatherResult:
    """Attempts of :func:`_gather_once` (or, with ``speech``, a
    :class:`~callflow.runtime._speech.SpeechRules`, of keys-or-speech attempts)."""
    if retries < 1:
        raise ValueError(f"retries counts attempts (Plivo: at least 1), not {retries}")
    if rules.flush:
        call.flush_dtmf()
    # Re-prompts escalate per event, as VoiceXML's ``count``: the n-th NoInput plays entry n of
    # ``no_input`` and the n-th Invalid entry n of ``invalid``, each counted on its own.
    no_inputs = invalids = 0
    result: GatherResult = NoInput()
    for attempt in range(retries):
        if speech is None:
            result = await _gather_once(call, _nth(prompt, attempt), rules)
        else:
            from callflow.runtime import _speech

            result = await _speech.gather_once(
                call, _nth(prompt, attempt), rules, speech, _gather_once
            )
        log.debug("call=%s gather attempt %d: %r", call.call_id, attempt + 1, result)
        if isinstance(result, Digits | Speech) or attempt + 1 == retries:
            break
        if isinstance(result, NoInput):
            reprompt = _nth(no_input, no_inputs)
            no_inputs += 1
        else:
            reprompt = _nth(invalid, invalids)
            invalids += 1
        if reprompt is not None:
            await call.say(reprompt, barge_in=rules.barge_in or False)
    return result


async def _gather_once(call: Call, prompt: Any, rules: DigitRules) -> GatherResult:
    if prompt is not None:
        # A pending key that can barge in skips the prompt at once (``say``'s type-ahead rule).
        await call.say(prompt, barge_in=rules.barge_in or False)
    # As Plivo's GetDigits (FreeSWITCH play_and_get_digits): the input ends at the finish key,
    # at max_digits keys or when a wait runs out, and only then is it checked as a whole. A key
    # outside valid_digits spoils the input but does not end it, so the keys typed after it
    # belong to the rejected input and never become the next attempt's answer.
    digits = ""
    spoiled = False
    finished = False
    wait = rules.timeout
    while len(digits) < rules.max_digits:
        key = None
        with trio.move_on_after(wait):
            key = await call.wait_dtmf()
        if key is None:
            break
        if rules.finish_on_key and key == rules.finish_on_key:
            finished = True
            break
        spoiled = spoiled or key not in rules.valid_digits
        digits += key
        wait = rules.digit_timeout
    if len(digits) == rules.max_digits and rules.finish_on_key and rules.finish_timeout > 0:
        # ``1234#`` with max_digits=4 is one entry: Plivo ignores keys beyond numDigits, so
        # the finish key typed right after a full entry must not be the next input.
        call._take_finish_key(rules.finish_on_key, rules.finish_timeout)
    if not digits and not finished:
        return NoInput()
    if spoiled or len(digits) < rules.min_digits:
        return Invalid(digits, sensitive=rules.sensitive)
    return Digits(digits, sensitive=rules.sensitive)


async def menu(
    call: Call,
    prompt: Any,
    choices: Mapping[str, T],
    *,
    retries: int,
    timeout: float,
    no_input: Any,
    invalid: Any,
    barge_in: bool | str | BargeIn,
    flush: bool,
) -> T | Any | NoInput | Invalid:
    keys = "".join(choices)
    if not choices or len(keys) != len(choices) or set(keys) - set(DTMF_KEYS):
        raise ValueError(f"menu choices must be single DTMF keys, got {list(choices)}")
    rules = DigitRules(
        max_digits=1,
        min_digits=1,
        timeout=timeout,
        digit_timeout=timeout,
        finish_on_key="",
        valid_digits=keys,
        barge_in=barge_in,
        sensitive=False,
        flush=flush,
    )
    result = await gather(call, prompt, rules, retries=retries, no_input=no_input, invalid=invalid)
    if not isinstance(result, Digits):
        return result
    choice = choices[result.value]
    return await _run_choice(call, choice)


async def _run_choice(call: Call, choice: Any) -> Any:
    """A sub-flow runs and its result is returned: a ``Flow``, or any callable (an
    ``async def f(call)``, a lambda, a ``functools.partial``) called with the call, its
    result awaited when it is awaitable. A class, or any other value, is returned as it is."""
    from callflow._flow import Flow

    if isinstance(choice, Flow):
        return await choice.handler(call)
    if callable(choice) and not isinstance(choice, type):
        handler: Callable[[Call], Awaitable[Any] | Any] = choice
        result = handler(call)
        return await result if inspect.isawaitable(result) else result
    return choice


async def record(
    call: Call,
    *,
    max_s: float,
    silence_s: float,
    finish_on_key: str,
    play_beep: bool,
    vad: VadSettings | None,
) -> Recording:
    if max_s <= 0 or silence_s <= 0:
        raise ValueError("max_s and silence_s are positive seconds")
    if set(finish_on_key) - set(DTMF_KEYS):
        raise ValueError(f"finish_on_key must be DTMF keys or '', not {finish_on_key!r}")
    settings = vad or VadSettings()
    rate = call.info.format.sample_rate
    frames: list[np.ndarray[Any, np.dtype[np.int16]]] = []
    stop_key: list[str] = []
    reason = "max_length"
    heard_speech = False
    quiet_s = 0.0
    detector = Vad(settings)
    with trio.CancelScope() as key_scope:

        def on_key(digit: str) -> None:
            if finish_on_key and digit in finish_on_key and not stop_key:
                stop_key.append(digit)
                key_scope.cancel()

        call._key_watchers.append(on_key)  # from before the beep: a key then ends it too
        try:
            if play_beep:
                try:
                    await call.say(beep(0.25, freq_hz=1000, rate=rate))
                except CallEnded:  # a hangup during the beep: an empty message, not an error
                    reason = "hangup"
            async with call.listen(max_frames=max(50, math.ceil(max_s / 0.02) + 50)) as inbound:
                with trio.move_on_after(max_s):
                    while True:
                        try:
                            frame = await inbound.receive()
                        except CallEnded:
                            reason = "hangup"
                            break
                        frames.append(frame)
                        if detector.push(frame, rate) == "start":
                            heard_speech = True
                        voiced = detector.voiced(frame, rate)
                        quiet_s = 0.0 if voiced else quiet_s + frame.size / rate
                        if quiet_s >= silence_s:
                            reason = "silence"
                            break
        finally:
            call._key_watchers.remove(on_key)
    if stop_key:
        reason = "key"
        call._take_key(stop_key[0])
    samples = np.concatenate(frames) if frames else np.zeros(0, dtype=np.int16)
    return Recording(Audio(samples, rate), reason, stop_key[0] if stop_key else None, heard_speech)


async def wait_speech(call: Call, vad: VadSettings | None) -> None:
    # ``wake`` is set by speech *or* by the call ending (``_wait_or_end``), so whether speech
    # was heard is kept apart: a hangup raises CallEnded, it is not speech.
    heard = False
    wake = Signal()

    def on_speech(_cause: str) -> None:
        nonlocal heard
        heard = True
        wake.set()

    watch = TriggerWatch(call, BargeIn(keys=False, speech=vad or True), on_speech)
    try:
        while not heard:
            call._raise_if_ended()
            await call._wait_or_end(wake)
    finally:
        watch.stop()
