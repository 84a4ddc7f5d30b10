"""Structured logs: the call a log line belongs to, and ``--log-format json``.

A call's identity travels in a :class:`contextvars.ContextVar` (:data:`CALL_CONTEXT`), which
trio copies into every task at spawn time: the runtime binds it once per call
(:func:`bind_call`) before it starts the call's tasks, so every line the call's reader, flow
and helpers log carries the call id, stream id and flow path without being passed them.

:class:`JsonFormatter` writes one JSON object per line::

    {"ts": "2026-12-06T21:30:00.123Z", "level": "INFO", "logger": "callflow.call",
     "message": "...", "call_id": "...", "stream_id": "...", "flow": "/ivr"}

``call_id``, ``stream_id`` and ``flow`` are present on every line of a call (``null`` when not
yet known, e.g. the stream id before ``start``) and absent on lines that belong to no call.
``exc`` holds a traceback when there is one. JSON escaping keeps every value on its line (a
newline from outside is written ``\\n``); :data:`MAX_MESSAGE_CHARS` and
:data:`MAX_EXC_CHARS` bound the line. Masking is the caller's: what the runtime masks
(sensitive digits) is masked in the message before it reaches any formatter.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from typing import Final, NamedTuple

#: Longest ``message`` written, in characters; a longer one is cut and ends with ``…``.
MAX_MESSAGE_CHARS: Final = 4096
#: Longest ``exc`` (traceback) written, in characters; the end (the raise site) is kept.
MAX_EXC_CHARS: Final = 16384
#: Longest call id, stream id or flow path kept by :func:`bind_call` (a CallUUID is 36):
#: they may come from an unsigned request.
MAX_ID_CHARS: Final = 100


class CallLogContext(NamedTuple):
    """What every log line of a call carries."""

    call_id: str | None
    stream_id: str | None
    flow: str | None


#: The call the current task works for; ``None`` outside any call.
CALL_CONTEXT: Final[contextvars.ContextVar[CallLogContext | None]] = contextvars.ContextVar(
    "callflow_call", default=None
)


def bind_call(
    *, call_id: str | None, stream_id: str | None = None, flow: str | None = None
) -> contextvars.Token[CallLogContext | None]:
    """Mark the current task (and the tasks it starts from now on) as working for a call.

    Values longer than :data:`MAX_ID_CHARS` are cut. Returns the token
    :meth:`contextvars.ContextVar.reset` takes to undo it.
    """
    return CALL_CONTEXT.set(
        CallLogContext(
            call_id if call_id is None else _cut(call_id, MAX_ID_CHARS),
            stream_id if stream_id is None else _cut(stream_id, MAX_ID_CHARS),
            flow if flow is None else _cut(flow, MAX_ID_CHARS),
        )
    )


def _cut(text: str, limit: int, *, keep_end: bool = False) -> str:
    if len(text) <= limit:
        return text
    return "…" + text[-(limit - 1) :] if keep_end else text[: limit - 1] + "…"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (see the module docstring for the keys).

    ``fields`` are added to every line (e.g. ``{"worker": 1}`` in a worker process).
    """

    def __init__(self, fields: dict[str, object] | None = None) -> None:
        super().__init__()
        self.fields: dict[str, object] = dict(fields or {})

    def format(self, record: logging.LogRecord) -> str:
        created = time.gmtime(record.created)
        millis = int(record.msecs)
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", created) + f".{millis:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": _cut(record.getMessage(), MAX_MESSAGE_CHARS),
            **self.fields,
        }
        ctx = getattr(record, "call_context", None) or CALL_CONTEXT.get()
        if ctx is not None:
            entry["call_id"] = ctx.call_id
            entry["stream_id"] = ctx.stream_id
            entry["flow"] = ctx.flow
        if record.exc_info:
            entry["exc"] = _cut(self.formatException(record.exc_info), MAX_EXC_CHARS, keep_end=True)
        elif record.exc_text:
            entry["exc"] = _cut(record.exc_text, MAX_EXC_CHARS, keep_end=True)
        if record.stack_info:
            entry["stack"] = _cut(record.stack_info, MAX_EXC_CHARS, keep_end=True)
        return json.dumps(entry, ensure_ascii=True, default=str)
