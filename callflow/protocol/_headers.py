"""The ``extra_headers`` string Plivo repeats on ``start``, ``media`` and ``dtmf`` events."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import attrs

__all__ = ["ExtraHeaders"]


def _split(raw: str) -> dict[str, str]:
    """The mapping for one ``extra_headers`` string (rules in :class:`ExtraHeaders`)."""
    text = raw.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            obj = None
        if isinstance(obj, dict):
            return {
                str(key).strip(): _json_value(value)
                for key, value in obj.items()
                if str(key).strip()
            }
    separator = ";" if ";" in text else ","
    headers: dict[str, str] = {}
    for entry in text.split(separator):
        key, _, value = entry.partition("=")
        key = key.strip()
        if key:
            headers[key] = value.strip()
    return headers


def _json_value(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"))


@attrs.frozen(eq=False)
class ExtraHeaders(Mapping[str, str]):
    """The ``extra_headers`` of a stream, as a read-only ``str -> str`` mapping.

    Plivo sends the ``<Stream extraHeaders="k=v;k=v">`` attribute back as the top-level
    ``extra_headers`` *string* on ``start``, ``media`` and ``dtmf`` events (PROTOCOL.md §2,
    §5; seed ``002_…`` shows ``"{}"``; seed ``003_…`` shows ``key1=value1;key2=value2``). The
    string has been seen in three forms, all accepted here:

    * ``"{}"`` when the stream has no extra headers, and more generally a JSON object
      (``{"a":"b"}``): string values are kept, ``null`` becomes ``""``, other values their
      compact JSON text (``1``, ``true``);
    * ``"k=v;k=v"`` (Plivo's documented form);
    * ``"k=v,k=v"``: commas separate entries only when the string holds no ``;``.

    Parsing never fails. Keys and values are stripped of surrounding whitespace; an entry
    without ``=`` is kept as a key with the value ``""`` (a bare flag is still information);
    empty entries and entries with an empty key are dropped; when a key repeats, the last
    value wins. Values are kept verbatim: no percent-decoding (§5 limits values to
    alphanumerics, so there is nothing to decode).

    Equality is that of a mapping: ``ExtraHeaders.parse("a=1") == {"a": "1"}`` is true and
    the ``"k=v;k=v"`` and ``"k=v,k=v"`` forms of the same pairs are equal. :attr:`raw` keeps
    the string as Plivo sent it.

    Attributes:
        raw: the ``extra_headers`` string exactly as received (``"{}"`` for :attr:`EMPTY`).
    """

    raw: str
    _headers: dict[str, str] = attrs.field(
        init=False,
        repr=False,
        default=attrs.Factory(lambda self: _split(self.raw), takes_self=True),
    )

    EMPTY: ClassVar[ExtraHeaders]
    """No extra headers: what Plivo sends as ``"{}"`` (seed ``002_…``)."""

    @classmethod
    def parse(cls, raw: str | None) -> ExtraHeaders:
        """The headers for an ``extra_headers`` string; ``None`` (key absent) gives :attr:`EMPTY`.

        Every media frame of a call carries the same string, so results are cached by string
        (least recently used, 4096 entries: one per concurrent call that has its own headers,
        each at most 512 bytes by PROTOCOL.md §5). Never raises.
        """
        if raw is None:
            return cls.EMPTY
        return _parse_cached(raw)

    def __getitem__(self, key: str) -> str:
        return self._headers[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers)

    def __len__(self) -> int:
        return len(self._headers)

    def __contains__(self, key: object) -> bool:
        return key in self._headers

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ExtraHeaders):
            return self._headers == other._headers
        if isinstance(other, Mapping):
            return self._headers == dict(other.items())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._headers.items()))


ExtraHeaders.EMPTY = ExtraHeaders("{}")

_parse_cached = functools.lru_cache(maxsize=4096)(ExtraHeaders)
