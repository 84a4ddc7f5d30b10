"""The private cattrs converter and the wire shape of every event and command.

Plivo nests fields (``start.mediaFormat.sampleRate``) that callflow's values keep flat
(``Start.sample_rate``). A cattrs rename maps one key to one attribute, so messages are
flattened first, each nested key becoming its dotted path, and each attribute is renamed to
the dotted path it lives at::

    {"start": {"mediaFormat": {"sampleRate": "8000"}}}
      -> flatten -> {"start.mediaFormat.sampleRate": "8000"}
      -> cattrs, override(rename="start.mediaFormat.sampleRate") -> Start(sample_rate=8000)

Writing runs the same table backwards (unstructure, then nest the dotted keys), so one
:class:`Shape` per message type is the whole wire format, in both directions, and a bad
value's dotted path is the ``field`` of the :class:`ProtocolError` that reports it.

The converter's hooks carry PROTOCOL.md §2's tolerance: an ``int`` field takes an integer
or a string of decimal digits (``"8000"``), never a bool, float or other text; a ``str``
field takes only a string; ``extra_headers`` takes its string (or, tolerated, an object).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import cattrs
from cattrs.errors import AttributeValidationNote, BaseValidationError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from callflow.protocol._commands import Checkpoint, ClearAudio, PlayAudio, SendDTMF, dtmf_digits
from callflow.protocol._errors import ProtocolError
from callflow.protocol._events import (
    ClearedAudio,
    Dtmf,
    Media,
    PlayedStream,
    Start,
    Stop,
    dtmf_digit,
)
from callflow.protocol._headers import ExtraHeaders

__all__ = [
    "INBOUND",
    "OUTBOUND",
    "SHAPES",
    "Shape",
    "dumps",
    "read",
    "show",
    "structure_int",
    "write",
]

_converter = cattrs.Converter(forbid_extra_keys=False, detailed_validation=True)

dumps: Callable[[Any], str] = json.JSONEncoder(separators=(",", ":")).encode
"""Compact JSON text, ASCII only (one encoder, built once)."""


class _BadValue(TypeError):
    """A hook's complaint about one value; ``suffix`` extends the path (``[1]``)."""

    def __init__(self, message: str, suffix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.suffix = suffix


def show(value: Any) -> str:
    """A short JSON rendering of a wire value for error messages."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- hooks ----------------------------------------------------------------------------


def structure_int(value: Any, _type: Any = int) -> int:
    """An ``int`` field: an integer or a string of ASCII digits with an optional ``-``."""
    if type(value) is int:
        return value
    if type(value) is str and value.isascii():
        digits = value[1:] if value.startswith("-") else value
        if digits.isdigit():
            try:
                return int(value)
            except ValueError:  # more digits than int() accepts
                pass
    raise _BadValue(f"expected an integer or a string of digits, got {show(value)}")


def _structure_str(value: Any, _type: Any) -> str:
    if type(value) is str:
        return value
    raise _BadValue(f"expected a string, got {show(value)}")


def _structure_dtmf_digit(value: Any, _type: Any) -> str:
    """Checked while structuring, so the digit is reported with the other bad fields."""
    return dtmf_digit(_structure_str(value, _type))


def _structure_dtmf_digits(value: Any, _type: Any) -> str:
    return dtmf_digits(_structure_str(value, _type))


MAX_ID_CHARS = 128
"""Longest call or stream id read from ``start`` (Plivo's are 36-character UUIDs)."""


def _structure_id(value: Any, _type: Any) -> str:
    """A call or stream id: printable (no line break or control character: ids start every
    log line of the call) and at most :data:`MAX_ID_CHARS` characters."""
    text = _structure_str(value, _type)
    if not text or len(text) > MAX_ID_CHARS or not text.isprintable():
        raise _BadValue(
            f"expected an id of 1-{MAX_ID_CHARS} printable characters, got {len(text)} "
            "characters" + ("" if text.isprintable() else " with control characters")
        )
    return text


def _structure_str_tuple(value: Any, _type: Any) -> tuple[str, ...]:
    if type(value) is not list:
        raise _BadValue(f"expected a list of strings, got {show(value)}")
    for index, item in enumerate(value):
        if type(item) is not str:
            raise _BadValue(f"expected a string, got {show(item)}", f"[{index}]")
    return tuple(value)


def _structure_headers(value: Any, _type: Any) -> ExtraHeaders:
    if type(value) is str:
        return ExtraHeaders.parse(value)
    if value is None:
        return ExtraHeaders.EMPTY
    if type(value) is dict:
        return ExtraHeaders.parse(dumps(value))
    raise _BadValue(f"expected a string, got {show(value)}")


def _unstructure_int_text(value: int | None) -> str | None:
    """Timestamps are integers in callflow but strings of digits on the wire (§2)."""
    return None if value is None else str(value)


_converter.register_structure_hook(int, structure_int)
_converter.register_structure_hook(str, _structure_str)
_converter.register_structure_hook(ExtraHeaders, _structure_headers)
_converter.register_unstructure_hook(ExtraHeaders, lambda headers: headers.raw)


# --- shapes ---------------------------------------------------------------------------


@attrs.frozen
class Shape:
    """Where each attribute of ``cls`` lives in the wire JSON of event ``tag``.

    Attributes:
        tag: the ``event`` value written for ``cls``.
        cls: the attrs class.
        paths: attribute name -> dotted wire path (written in the class's field order).
        fallbacks: dotted wire path -> other paths to read it from when it is absent.
        defaults: dotted wire path -> value to read when it is absent everywhere.
        as_text: attributes that are integers in callflow and digit strings on the wire.
        hooks: attribute name -> structure hook, where the type's own hook does not fit.
    """

    tag: str
    cls: type[Any]
    paths: Mapping[str, str]
    fallbacks: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    defaults: Mapping[str, Any] = attrs.field(factory=dict)
    as_text: frozenset[str] = frozenset()
    hooks: Mapping[str, Callable[[Any, Any], Any]] = attrs.field(factory=dict)
    parents: frozenset[str] = attrs.field(init=False)
    """The paths that are JSON objects to descend into (``start``, ``start.mediaFormat``)."""

    @parents.default
    def _parents(self) -> frozenset[str]:
        paths = [*self.paths.values(), *self.fallbacks, *self.defaults]
        for others in self.fallbacks.values():
            paths += others
        return frozenset(
            ".".join(parts[:end])
            for parts in (path.split(".") for path in paths)
            for end in range(1, len(parts))
        )

    def register(self) -> None:
        """Generate this class's cattrs structure and unstructure functions."""
        names = [a.name for a in attrs.fields(self.cls)]
        if sorted(names) != sorted(self.paths):
            raise AssertionError(f"{self.cls.__name__}: paths {self.paths} vs fields {names}")
        overrides: dict[str, Any] = {  # Any: cattrs' stubs mix overrides with its flags
            name: override(
                rename=path,
                struct_hook=self.hooks.get(name),
                unstruct_hook=_unstructure_int_text if name in self.as_text else None,
            )
            for name, path in self.paths.items()
        }
        _converter.register_structure_hook(
            self.cls, make_dict_structure_fn(self.cls, _converter, **overrides)
        )
        _converter.register_unstructure_hook(
            self.cls, make_dict_unstructure_fn(self.cls, _converter, **overrides)
        )


_SEQ = {"sequence_number": "sequenceNumber"}
_HEADERS = {"extra_headers": "extra_headers"}  # sic: Plivo's one snake_case key (§2)

START = Shape(
    "start",
    Start,
    _SEQ
    | {
        "call_id": "start.callId",
        "stream_id": "start.streamId",
        "account_id": "start.accountId",
        "tracks": "start.tracks",
        "encoding": "start.mediaFormat.encoding",
        "sample_rate": "start.mediaFormat.sampleRate",
    }
    | _HEADERS,
    fallbacks={"start.streamId": ("streamId",)},
    hooks={"tracks": _structure_str_tuple, "call_id": _structure_id, "stream_id": _structure_id},
)
MEDIA = Shape(
    "media",
    Media,
    _SEQ
    | {
        "stream_id": "streamId",
        "track": "media.track",
        "timestamp_ms": "media.timestamp",
        "chunk": "media.chunk",
        "payload": "media.payload",
    }
    | _HEADERS,
    as_text=frozenset({"timestamp_ms"}),
)
DTMF = Shape(
    "dtmf",
    Dtmf,
    _SEQ
    | {
        "stream_id": "streamId",
        "digit": "dtmf.digit",
        "track": "dtmf.track",
        "timestamp_ms": "dtmf.timestamp",
    }
    | _HEADERS,
    as_text=frozenset({"timestamp_ms"}),
    hooks={"digit": _structure_dtmf_digit},
)
PLAYED_STREAM = Shape(
    "playedStream", PlayedStream, _SEQ | {"stream_id": "streamId", "name": "name"}
)
CLEARED_AUDIO = Shape("clearedAudio", ClearedAudio, _SEQ | {"stream_id": "streamId"})
STOP = Shape(
    "stop",
    Stop,
    _SEQ | {"call_id": "stop.callId", "stream_id": "stop.streamId", "reason": "reason"},
    fallbacks={
        "stop.callId": ("callId",),
        "stop.streamId": ("streamId",),
        "reason": ("stop.reason",),
    },
)

PLAY_AUDIO = Shape(
    "playAudio",
    PlayAudio,
    {
        "stream_id": "streamId",
        "content_type": "media.contentType",
        "sample_rate": "media.sampleRate",
        "payload": "media.payload",
    },
    defaults={"streamId": None},
)
CHECKPOINT = Shape("checkpoint", Checkpoint, {"stream_id": "streamId", "name": "name"})
CLEAR_AUDIO = Shape("clearAudio", ClearAudio, {"stream_id": "streamId"})
SEND_DTMF = Shape(
    "sendDTMF", SendDTMF, {"digits": "dtmf"}, hooks={"digits": _structure_dtmf_digits}
)

INBOUND: dict[str, Shape] = {
    s.tag: s for s in (START, MEDIA, DTMF, PLAYED_STREAM, CLEARED_AUDIO, STOP)
} | {"played": PLAYED_STREAM}  # one FAQ's name for playedStream (seed 002_…, §2)
"""Inbound ``event`` tag -> shape, aliases included."""

OUTBOUND: dict[str, Shape] = {s.tag: s for s in (PLAY_AUDIO, CHECKPOINT, CLEAR_AUDIO, SEND_DTMF)}
"""Outbound ``event`` tag -> shape."""

SHAPES: dict[type[Any], Shape] = {s.cls: s for s in (*INBOUND.values(), *OUTBOUND.values())}
"""Class -> shape, for writing."""

for _shape in SHAPES.values():
    _shape.register()


# --- reading and writing --------------------------------------------------------------


def _flatten(
    obj: Mapping[str, Any], prefix: str, parents: frozenset[str], into: dict[str, Any]
) -> dict[str, Any]:
    """``obj``'s keys as dotted paths, descending only into the ``parents`` objects.

    Other objects stay values (an ``extra_headers`` object, an unknown key's object). Keys
    with a dot are not Plivo's and are dropped, so that none can pose as a nested field.
    """
    for key, value in obj.items():
        if "." in key:
            continue
        path = f"{prefix}{key}"
        if type(value) is dict and path in parents:
            _flatten(value, f"{path}.", parents, into)
        else:
            into[path] = value
    return into


def read(shape: Shape, obj: dict[str, Any], raw: str) -> Any:
    """The ``shape.cls`` value for a decoded message ``obj`` (whose text is ``raw``).

    Raises:
        ProtocolError: naming every missing or mistyped field; ``field`` is the first.
    """
    flat = _flatten(obj, "", shape.parents, {})
    for path, others in shape.fallbacks.items():
        if path not in flat:
            for other in others:
                if other in flat:
                    flat[path] = flat[other]
                    break
    for path, value in shape.defaults.items():
        flat.setdefault(path, value)
    try:
        return _converter.structure(flat, shape.cls)
    except BaseValidationError as exc:
        problems = list(dict.fromkeys(_problem(shape, flat, sub) for sub in exc.exceptions))
    field, message = problems[0]
    if len(problems) > 1:
        message += "; also " + "; ".join(f"{f}: {m}" for f, m in problems[1:])
    fields = tuple(dict.fromkeys(f for f, _ in problems if f is not None))
    raise ProtocolError(message, event=obj.get("event"), field=field, raw=raw, fields=fields)


def _problem(shape: Shape, flat: Mapping[str, Any], exc: Exception) -> tuple[str | None, str]:
    """(dotted wire path, what is wrong there) for one error cattrs collected."""
    if isinstance(exc, ProtocolError):  # raised by a class's own validation
        return exc.field, exc.message
    path: str | None = None
    for note in getattr(exc, "__notes__", ()):
        if isinstance(note, AttributeValidationNote):
            path = shape.paths[note.name]
    if isinstance(exc, _BadValue):
        return (path + exc.suffix if path else None), exc.message
    if isinstance(exc, KeyError) and path is not None:
        parts = path.split(".")
        for end in range(1, len(parts)):
            parent = ".".join(parts[:end])
            if parent in flat:
                return parent, f"expected a JSON object, got {show(flat[parent])}"
        return path, "missing"
    return path, f"{type(exc).__name__}: {exc}"


def write(value: Any) -> dict[str, Any]:
    """The wire JSON object (not yet text) for an event or command value.

    ``sequenceNumber`` (when set) comes first, then ``event``, then the fields in shape
    order; ``None`` fields are left out.

    Raises:
        TypeError: when ``value`` is not one of the protocol's classes.
    """
    shape = SHAPES.get(type(value))
    if shape is None:
        raise TypeError(f"not a Plivo stream event or command: {value!r}")
    flat: dict[str, Any] = _converter.unstructure(value, shape.cls)
    out: dict[str, Any] = {}
    sequence_number = flat.pop("sequenceNumber", None)
    if sequence_number is not None:
        out["sequenceNumber"] = sequence_number
    out["event"] = shape.tag
    for path, item in flat.items():
        if item is None:
            continue
        *parents, leaf = path.split(".")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = item
    return out
