"""``Prompts``: the fixed text prompts a flow module declares, rendered ahead of time."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import final

from callflow.voice._text import Text

__all__ = ["Prompts"]


@final
class Prompts:
    """Fixed text prompts, by name: declare them at module level beside the flow.

    ::

        TEXT = Prompts(welcome="Welcome to Example Bank.", goodbye="Goodbye.")

        @flow("/bank", format=Format.MULAW_8K)
        async def bank(call: Call) -> None:
            await call.say(TEXT.welcome)

    The loader finds every module-level ``Prompts`` and gives it to the module's flows, so
    ``callflow prompts build FOLDER`` renders each into the render cache ahead of time (no
    fixed prompt is synthesised live), and a missing engine is an error when the flows load.

    Values are ``str`` or :class:`Text`; ``TEXT.welcome`` and ``TEXT["welcome"]`` are
    :class:`Text`.

    Raises:
        TypeError: a value that is not a str or Text.
        ValueError: an empty text.
    """

    __slots__ = ("_texts",)

    def __init__(self, texts: Mapping[str, str | Text] | None = None, /, **named: str | Text):
        merged = {**(texts or {}), **named}
        self._texts: dict[str, Text] = {}
        for name, value in merged.items():
            if isinstance(value, str):
                value = Text(value)
            if not isinstance(value, Text):
                raise TypeError(f"prompt {name!r} must be a str or Text, not {value!r}")
            self._texts[name] = value

    def __getitem__(self, name: str) -> Text:
        try:
            return self._texts[name]
        except KeyError:
            available = ", ".join(self._texts) or "none"
            raise KeyError(f"no text prompt {name!r}; declared: {available}") from None

    def __getattr__(self, name: str) -> Text:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(str(exc)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._texts)

    def __len__(self) -> int:
        return len(self._texts)

    def items(self) -> list[tuple[str, Text]]:
        """``(name, text)`` pairs, in declaration order."""
        return list(self._texts.items())

    def __repr__(self) -> str:
        return f"<Prompts {', '.join(self._texts)}>"
