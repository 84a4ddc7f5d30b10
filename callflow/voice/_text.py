"""``Text``: a prompt given as words, and the SSML subset every engine can honour."""

from __future__ import annotations

import re

import attrs
from lxml import etree

__all__ = ["Break", "Text", "plain_segments"]

_SSML_START = re.compile(r"^\s*<speak[\s>]")


def _check_text(_: object, __: object, value: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"Text takes a str, not {type(value).__name__}")
    if not value.strip():
        raise ValueError("Text needs some words, not an empty string")


@attrs.frozen
class Text:
    """Words to speak, synthesised by the flow's text-to-speech engine.

    ``call.say("Your balance is 42 dollars")`` is ``call.say(Text("Your balance is 42
    dollars"))``; use ``Text`` to choose a voice, to say that a string is SSML, or to keep a
    one-off text (a balance) out of the render cache.

    Attributes:
        text: the words, or an SSML document (``<speak>…</speak>``).
        voice: the engine's voice name (``"en-us"`` for espeak-ng, a model path for Piper,
            ``"alloy"`` for OpenAI); ``None`` for the engine's default.
        ssml: whether ``text`` is SSML; ``None`` (the default) means "when it starts with
            ``<speak``". Engines without SSML get the plain-text reading of the supported
            subset (:func:`plain_segments`): ``<break>`` becomes silence,
            ``<say-as interpret-as="digits">`` spaced digits.
        cache: keep the rendering in the render cache (default). ``False`` for text that
            changes per call and is not worth keeping (it is still synthesised once per say).

    Raises:
        TypeError: ``text`` is not a str.
        ValueError: ``text`` is empty or blank.
    """

    text: str = attrs.field(validator=_check_text)
    voice: str | None = None
    ssml: bool | None = None
    cache: bool = True

    @property
    def is_ssml(self) -> bool:
        """Whether the text is read as SSML."""
        return bool(_SSML_START.match(self.text)) if self.ssml is None else self.ssml

    def __str__(self) -> str:
        return self.text


@attrs.frozen
class Break:
    """A pause of ``seconds`` (from SSML ``<break>``)."""

    seconds: float


_STRENGTH_S = {
    "none": 0.0,
    "x-weak": 0.1,
    "weak": 0.25,
    "medium": 0.4,
    "strong": 0.75,
    "x-strong": 1.2,
}
_TIME = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s)\s*$")
_MAX_BREAK_S = 10.0  # SSML 1.1 lets engines cap breaks; ten seconds is plenty for a prompt


def _break_seconds(element: etree._Element) -> float:
    time = element.get("time")
    if time is not None:
        match = _TIME.match(time)
        if match:
            value = float(match.group(1)) / (1000 if match.group(2) == "ms" else 1)
            return min(value, _MAX_BREAK_S)
    return _STRENGTH_S.get(element.get("strength", "medium"), 0.4)


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def plain_segments(text: Text) -> list[str | Break]:
    """The text as plain words and pauses, for engines that do not read SSML.

    Plain text is one segment. SSML keeps its words; ``<break time="500ms"/>`` (or
    ``strength=…``) is a :class:`Break`; ``<say-as interpret-as="digits">123</say-as>`` (also
    ``characters``, ``spell-out``, ``telephone``) becomes ``1 2 3``; other elements
    (``<p>``, ``<s>``, ``<emphasis>``, ``<prosody>``) give their words.

    Raises:
        ValueError: SSML that is not well-formed XML (the parser's message).
    """
    if not text.is_ssml:
        return [text.text]
    try:
        root = etree.fromstring(text.text.encode(), parser=etree.XMLParser(resolve_entities=False))
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"SSML is not well-formed: {exc}") from None
    out: list[str | Break] = []

    def words(value: str | None) -> None:
        if value and value.strip():
            out.append(" ".join(value.split()))

    def walk(element: etree._Element) -> None:
        name = _local(element.tag)
        if name == "break":
            out.append(Break(_break_seconds(element)))
        elif name == "say-as" and element.get("interpret-as") in (
            "digits",
            "characters",
            "spell-out",
            "telephone",
        ):
            words(" ".join(ch for ch in "".join(element.itertext()) if not ch.isspace()))
        else:
            words(element.text)
            for child in element:
                walk(child)
                words(child.tail)
            return
        # break / say-as: their tail is read by the parent loop

    walk(root)
    merged: list[str | Break] = []
    for item in out:
        if isinstance(item, str) and merged and isinstance(merged[-1], str):
            merged[-1] = f"{merged[-1]} {item}"
        else:
            merged.append(item)
    return merged
