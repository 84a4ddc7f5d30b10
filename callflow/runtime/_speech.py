"""Answers by voice: one ``gather`` attempt that takes keys or speech, whichever comes first.

The caller's audio is listened to from before the prompt (so words that barge in are heard
whole) and handed to the call's recognizer (:class:`~callflow.voice.Stt`). A key ends the
recognition at once and the attempt goes on as a key attempt, under the same GetDigits rules
(:func:`~callflow.runtime._collect._gather_once`). A recognition that matches nothing, or
falls below ``min_confidence``, is :class:`Invalid` (re-prompted and counted as keys are).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import trio

from callflow.runtime._results import BargeIn, GatherResult, Invalid, NoInput, Speech
from callflow.runtime._sync import Signal
from callflow.voice import SttResult

if TYPE_CHECKING:
    from callflow.runtime._call import Call
    from callflow.runtime._collect import DigitRules

log = logging.getLogger("callflow.call")

INPUTS = ("dtmf", "speech")


def parse_input(value: str) -> frozenset[str]:
    """``input="dtmf speech"`` (Plivo ``<GetInput>``'s ``inputType``: ``dtmf``, ``speech``,
    ``dtmf speech``) as a set.

    Raises:
        ValueError: an empty value or another word.
    """
    words = frozenset(value.replace(",", " ").split())
    if not words or words - set(INPUTS):
        raise ValueError(f"input must be 'dtmf', 'speech' or 'dtmf speech', not {value!r}")
    return words


_WORD = re.compile(r"[a-z0-9']+")


def _normal(phrase: str) -> str:
    """Lower-case words only: ``"Sales."`` and ``"sales"`` are the same phrase."""
    return " ".join(_WORD.findall(phrase.lower()))


def _phrase_in(text: str, phrases: Sequence[str]) -> str | None:
    """The phrase whose words appear together in ``text`` (the longest when several do)."""
    words = _normal(text).split()
    found: str | None = None
    for phrase in phrases:
        wanted = _normal(phrase).split()
        n = len(wanted)
        present = n and any(words[i : i + n] == wanted for i in range(len(words) - n + 1))
        if present and (found is None or len(_normal(phrase)) > len(_normal(found))):
            found = phrase
    return found


@attrs.frozen(kw_only=True)
class SpeechRules:
    """How one attempt takes speech.

    Attributes:
        hints: the phrases expected (the offline recognizer accepts only these).
        keys: whether keys are taken too.
        min_confidence: a result below it is ``Invalid``.
        utterance_timeout: seconds from the start of speech to the recognizer's result, after
            which the attempt is ``Invalid``.
        closed: only the hints are answers: speech holding none of them is ``Invalid`` (``ask``);
            otherwise it is returned as recognised.
    """

    hints: tuple[str, ...]
    keys: bool = True
    min_confidence: float = 0.0
    utterance_timeout: float = 10.0
    closed: bool = False

    def judge(self, result: SttResult | None) -> GatherResult:
        """The attempt's outcome from the recognizer's final result: a hint found in the text
        is returned as the flow wrote it (``"Sales."``, ``"sales please"`` → ``"sales"``)."""
        if result is None or not result.text.strip():
            return Invalid("")
        if result.confidence < self.min_confidence:
            return Invalid(result.text)
        phrase = _phrase_in(result.text, self.hints)
        if phrase is None:
            return Invalid(result.text) if self.closed else Speech(result.text, result.confidence)
        return Speech(phrase, result.confidence)


async def gather_once(
    call: Call,
    prompt: Any,
    rules: DigitRules,
    speech: SpeechRules,
    keys_attempt: Callable[[Call, Any, DigitRules], Awaitable[GatherResult]],
) -> GatherResult:
    if rules.flush:
        call.flush_dtmf()  # start from an empty buffer; the keys attempt must not flush again
        rules = attrs.evolve(rules, flush=False)
    if speech.keys and call.pending_dtmf():  # type-ahead: a key already answers this attempt
        return await keys_attempt(call, prompt if not rules.barge_in else None, rules)
    stt = call._recognizer()
    rate = call.info.format.sample_rate
    started = Signal()
    key_pending = Signal()
    outcome: list[GatherResult] = []

    def on_key(_digit: str) -> None:
        if speech.keys:
            key_pending.set()

    def on_partial(_result: SttResult) -> None:
        started.set()

    if prompt is not None and not rules.barge_in:
        await call.say(prompt)  # a prompt that cannot be interrupted: listen after it
    call._key_watchers.append(on_key)
    try:
        async with (
            call.listen(
                max_frames=max(250, math.ceil(speech.utterance_timeout * 50) + 50)
            ) as inbound,
            trio.open_nursery() as nursery,
        ):
            recognition = trio.CancelScope()

            async def recognize() -> None:
                with recognition:
                    result = await stt.recognize(
                        inbound, rate, hints=speech.hints, on_partial=on_partial
                    )
                    outcome.append(speech.judge(result))
                    nursery.cancel_scope.cancel()

            nursery.start_soon(recognize)
            if prompt is not None and rules.barge_in:
                # the prompt's own triggers, and speech: the words that stop it are heard
                keys = rules.barge_in.keys if speech.keys else False
                trigger = BargeIn(keys=keys, speech=rules.barge_in.speech or True)
                await call.say(prompt, barge_in=trigger)
            # The first key, or the start of speech, within ``timeout`` of the prompt's end.
            with trio.move_on_after(rules.timeout):
                await _first(key_pending, started)
            if key_pending.is_set() or call.pending_dtmf():
                recognition.cancel()  # a key ends recognition at once
            elif not started.is_set():
                outcome.append(NoInput())
                nursery.cancel_scope.cancel()
            else:  # speech: wait for its result, unless a key comes first (the key wins)
                with trio.move_on_after(speech.utterance_timeout):
                    await key_pending.wait()
                recognition.cancel()
                if not key_pending.is_set():
                    outcome.append(Invalid(""))
                    nursery.cancel_scope.cancel()
    finally:
        call._key_watchers.remove(on_key)
    if outcome:
        return outcome[0]
    log.debug("call=%s a key ended speech recognition", call.call_id)
    return await keys_attempt(call, None, rules)


async def _first(*events: Signal) -> None:
    """Return once any of ``events`` is set."""
    async with trio.open_nursery() as nursery:
        for event in events:

            async def wait(event: Signal = event) -> None:
                await event.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(wait)


def choice_rules(
    choices: Sequence[str] | Mapping[str, str],
) -> tuple[dict[str, str], tuple[str, ...]]:
    """``ask``'s choices as (key → phrase, phrases): a list takes keys ``1``…``9`` in order; a
    mapping gives its own single DTMF keys.

    Raises:
        ValueError: no choice, more than nine listed, an empty phrase, or a key that is not
            one DTMF key.
    """
    from callflow.runtime._results import DTMF_KEYS

    if isinstance(choices, Mapping):
        keyed = {str(k).upper(): str(v) for k, v in choices.items()}
    else:
        phrases = [str(c) for c in choices]
        if len(phrases) > 9:
            raise ValueError("a list of choices takes keys 1-9: give a mapping for more")
        keyed = {str(i + 1): phrase for i, phrase in enumerate(phrases)}
    if not keyed:
        raise ValueError("ask needs at least one choice")
    for key, phrase in keyed.items():
        if len(key) != 1 or key not in DTMF_KEYS:
            raise ValueError(f"choice keys must be single DTMF keys, not {key!r}")
        if not phrase.strip():
            raise ValueError(f"choice {key!r} has an empty phrase")
    return keyed, tuple(keyed.values())
