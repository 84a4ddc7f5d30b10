"""Log lines an outside party cannot shape: escaped, bounded values and rate-limited warnings.

Everything a log line or an error body quotes from outside (HTTP params and headers, stream
tokens, WebSocket message text, Plivo event names) goes through :func:`escape` (or
:func:`quote`): every character that is not printable, and the backslash, is written as
Python's ``repr`` writes it (``\\n``, ``\\r``, ``\\x00``, ``\\u2028``…), so no outside value can
start a new log line or hide a control sequence; and at most :data:`MAX_VALUE_CHARS`
characters of it are shown, followed by ``…(N more)``.

Warnings that an outside party can repeat at will (unreadable messages, refused requests) go
through a :class:`WarningLimiter`: per key (a call, a peer address), the first ``burst`` lines
of each ``window`` are logged and the rest only counted; the key's next line after the window
(or :meth:`WarningLimiter.flush`, at the end of a call) writes one summary line such as
``call=ab12 … 9 812 more unreadable messages on this call in 60 s``. A ceiling across all keys
(``total_burst`` per window) bounds what many keys together can write. Every line held back
counts in ``callflow_log_lines_suppressed_total{kind}``.

Bound on a line: a value takes at most ``MAX_VALUE_CHARS + 20`` characters
(:data:`MAX_ESCAPED_CHARS`); callflow's lines quote at most a few values, so no line that
quotes outside values is longer than :data:`MAX_LINE_CHARS`.

No IO except through the given :class:`logging.Logger`.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from callflow.observe._metrics import METRICS, Metrics

__all__ = [
    "MAX_ESCAPED_CHARS",
    "MAX_LINE_CHARS",
    "MAX_VALUE_CHARS",
    "WarningLimiter",
    "escape",
    "quote",
]

MAX_VALUE_CHARS = 200
"""Most characters of one outside value shown in a log line or an error body (escapes
included); the rest is replaced by ``…(N more)``, N counted in characters of the value."""

MAX_ESCAPED_CHARS = MAX_VALUE_CHARS + 20
"""Longest text :func:`escape` returns with the default limit (the value and its suffix)."""

MAX_LINE_CHARS = 2000
"""Longest log line callflow writes when it quotes outside values (its own text and at most
a few values of :data:`MAX_ESCAPED_CHARS`)."""


def _escape_char(char: str) -> str:
    return "\\\\" if char == "\\" else repr(char)[1:-1]


def escape(value: object, limit: int = MAX_VALUE_CHARS) -> str:
    """``value`` as text safe for one log line: non-printable characters and the backslash
    escaped as ``repr`` writes them, at most ``limit`` characters, then ``…(N more)``.

    ``bytes`` are decoded as UTF-8 (undecodable bytes become U+FFFD); other non-``str``
    values go through ``str()``; N counts characters. No escape sequence is ever cut in two.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        text = bytes(value).decode("utf-8", "replace")
    else:
        text = value if isinstance(value, str) else str(value)
    head = text[:limit]
    if head.isprintable() and "\\" not in head:
        shown, out = len(head), head
    else:
        pieces: list[str] = []
        size = 0
        shown = 0
        for char in head:
            piece = char if char.isprintable() and char != "\\" else _escape_char(char)
            if size + len(piece) > limit:
                break
            pieces.append(piece)
            size += len(piece)
            shown += 1
        out = "".join(pieces)
    rest = len(text) - shown
    if rest > 0:
        out += f"…({rest} more)"
    return out


MAX_CALL_ID_CHARS = 64
"""Most characters of a call id shown in ``call=…`` (Plivo's CallUUIDs have 36)."""


def call_label(call_id: str | None) -> str:
    """``call=<CallUUID>`` (or ``call=-``), how every log line about a call starts: the id
    escaped and cut to :data:`MAX_CALL_ID_CHARS` (it comes from outside)."""
    return f"call={escape(call_id, MAX_CALL_ID_CHARS) if call_id else '-'}"


def quote(value: object, limit: int = MAX_VALUE_CHARS) -> str:
    """:func:`escape` in single quotes, for a value inside a sentence."""
    return f"'{escape(value, limit)}'"


def _grouped(count: int) -> str:
    return f"{count:,}".replace(",", " ")


class _Window:
    __slots__ = ("logged", "start", "suppressed")

    def __init__(self, start: float) -> None:
        self.start = start
        self.logged = 0
        self.suppressed = 0


class WarningLimiter:
    """Rate limit for one kind of repeated warning, per key and in total.

    Args:
        logger: where lines go.
        kind: the ``kind`` label of ``callflow_log_lines_suppressed_total`` (``unreadable``,
            ``unknown_event``, ``bad_signature``…).
        what: the plural noun for the summary (``"unreadable messages"``).
        where: how the summary names a key's scope (``"on this call"``, ``"from this peer"``).
        burst: lines logged per key in each window; the rest are counted.
        window: seconds of a window.
        total_burst: lines logged across all keys in each window.
        max_keys: keys remembered at once; the least recently used is forgotten (its summary
            written first), so memory stays bounded whatever the keys.
        clock: seconds, monotonic (default :func:`time.monotonic`).
        metrics: where suppressed lines are counted (default the process's).

    A key is the text that starts the line (``call=<CallUUID>``, ``peer=<host>``); callers
    escape it. Lines are written as ``logger.log(level, "%s " + msg, key, *args)``.
    """

    def __init__(
        self,
        logger: logging.Logger,
        kind: str,
        what: str,
        *,
        where: str = "on this call",
        burst: int = 10,
        window: float = 60.0,
        total_burst: int = 200,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics = METRICS,
    ) -> None:
        self.logger = logger
        self.kind = kind
        self._suppressed_total = metrics.log_lines_suppressed_total.labels(kind=kind)
        self.what = what
        self.where = where
        self.burst = burst
        self.window = window
        self.total_burst = total_burst
        self.max_keys = max_keys
        self.clock = clock
        self._keys: OrderedDict[str, _Window] = OrderedDict()
        self._total = _Window(clock())

    def log(self, key: str, level: int, msg: str, *args: object, stacklevel: int = 2) -> bool:
        """Log ``msg % args`` after ``key`` unless the key or the total is over its burst;
        whether the line was written. A summary of what the key had suppressed is written
        first when its window has ended. ``stacklevel`` is :meth:`logging.Logger.log`'s
        (the line names the caller's caller with 3)."""
        now = self.clock()
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _Window(now)
            if len(self._keys) > self.max_keys:
                old_key, old = self._keys.popitem(last=False)
                self._summary(old_key, old, now)
        else:
            self._keys.move_to_end(key)
            if now - state.start >= self.window:
                self._summary(key, state, now)
                state.start, state.logged, state.suppressed = now, 0, 0
        total = self._total
        if now - total.start >= self.window:
            if total.suppressed:
                self.logger.warning(
                    "… %s more %s (all sources) in %.0f s",
                    _grouped(total.suppressed),
                    self.what,
                    now - total.start,
                )
            total.start, total.logged, total.suppressed = now, 0, 0
        if state.logged >= self.burst:
            state.suppressed += 1  # in the key's summary
            self._suppressed_total.inc()
            return False
        if total.logged >= self.total_burst:
            total.suppressed += 1  # in the all-sources summary
            self._suppressed_total.inc()
            return False
        state.logged += 1
        total.logged += 1
        self.logger.log(level, "%s " + msg, key, *args, stacklevel=stacklevel)
        return True

    def warning(self, key: str, msg: str, *args: object) -> bool:
        """:meth:`log` at WARNING."""
        return self.log(key, logging.WARNING, msg, *args, stacklevel=3)

    def flush(self, key: str) -> None:
        """Write the key's summary now, if it suppressed anything, and forget the key (call
        at the end of a call)."""
        state = self._keys.pop(key, None)
        if state is not None:
            self._summary(key, state, self.clock())

    def reset(self) -> None:
        """Forget every key and the total, without summaries (a fresh start, for tests)."""
        self._keys.clear()
        self._total = _Window(self.clock())

    def _summary(self, key: str, state: _Window, now: float) -> None:
        if state.suppressed:
            self.logger.warning(
                "%s … %s more %s %s in %.0f s",
                key,
                _grouped(state.suppressed),
                self.what,
                self.where,
                max(now - state.start, 0.0),
            )
