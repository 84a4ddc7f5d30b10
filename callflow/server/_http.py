"""HTTP/1.1 on one connection with h11: read a request, answer it, keep the connection alive.

Never hand-parses HTTP: h11 frames requests and responses. What this module adds is the IO
around it (with the read limits and timeouts a public server needs) and the bytes of the
current request kept aside, so a WebSocket upgrade can be completed on the bytes h11 already
read.

Framing and limits (RFC 9112), checked before anything reads the body:

* A request with both ``Content-Length`` and ``Transfer-Encoding`` is refused with 400 and
  the connection closed (RFC 9112 §6.1: such a message "ought to be handled as an error"; a
  request hidden in its body is never read).
* One head limit, :data:`MAX_HEAD_BYTES`, however the bytes arrive (in one write or many):
  431.
* A body over :data:`MAX_BODY_BYTES` is 413 before it is read; a form over
  :data:`MAX_FORM_PARAMS` params (counted by their separators before anything is decoded) is
  413 too, as is a query over that count. Within these limits parsing a form takes well
  under a millisecond, and the signature check after it no more.
"""

from __future__ import annotations

import http
from collections.abc import Sequence
from urllib.parse import parse_qsl

import attrs
import h11
import trio

MAX_HEAD_BYTES = 16 * 1024
"""Largest request line + headers accepted (h11's default; bigger gets 431)."""

MAX_BODY_BYTES = 64 * 1024
"""Largest request body accepted (bigger gets 413). Plivo's webhooks are a few hundred bytes
(a few KB with custom SIP headers)."""

MAX_FORM_PARAMS = 256
"""Most params accepted in a form body or a query (more gets 413). Plivo sends about 20."""

HEAD_TIMEOUT = 30.0
"""Seconds a client has to send a complete request head (also the keep-alive idle limit)."""

BODY_TIMEOUT = 30.0
"""Seconds a client has to send the request body once the head has arrived."""

SEND_TIMEOUT = 30.0
"""Seconds a client has to take a response before the connection is dropped."""

LINGER_TIMEOUT = 2.0
"""Seconds spent discarding unread request bytes before closing after an error response,
so the client reads the response instead of a TCP reset (a "lingering close")."""

_LINGER_BYTES = 4 * 1024 * 1024
_RECEIVE_SIZE = 64 * 1024


class HttpError(Exception):
    """A request that gets an error response instead of reaching a handler.

    Attributes:
        status: the HTTP status to answer with (400, 408, 413, 415…).
        reason: what is wrong, for the log line and the plain-text body.
        headers: extra response headers (``Allow`` for 405…).
    """

    def __init__(self, status: int, reason: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.headers = list(headers)


@attrs.frozen
class Request:
    """One HTTP request, as handlers see it.

    Attributes:
        method: ``GET``, ``POST``… (upper case).
        target: the request target as sent, e.g. ``/support?x=1``.
        path: ``target`` without its query.
        query: the raw query string (no ``?``), possibly empty.
        headers: header names lower-cased; repeated headers joined with ``", "``.
        body: the body bytes (empty for GET).
        client: ``host:port`` of the peer, for logs.
    """

    method: str
    target: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    client: str

    def query_params(self) -> list[tuple[str, str]]:
        """The query's ``(key, value)`` pairs, URL-decoded, blank values kept.

        Raises:
            HttpError: 413 for more than :data:`MAX_FORM_PARAMS` params.
        """
        _check_count(self.query, "query")
        return parse_qsl(self.query, keep_blank_values=True)

    def form_params(self) -> list[tuple[str, str]]:
        """The body's ``application/x-www-form-urlencoded`` pairs (none for an empty body).

        Raises:
            HttpError: 415 for another content type, 413 for more than
                :data:`MAX_FORM_PARAMS` params, 400 for a body that is not UTF-8.
        """
        if not self.body:
            return []
        content_type = self.headers.get("content-type", "application/x-www-form-urlencoded")
        if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
            raise HttpError(415, f"expected application/x-www-form-urlencoded, not {content_type}")
        _check_count(self.body.decode("latin-1"), "form")
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HttpError(
                400, f"form body is not UTF-8 ({exc.reason} at byte {exc.start})"
            ) from None
        return parse_qsl(text, keep_blank_values=True)


def _check_count(text: str, where: str) -> None:
    # parse_qsl splits on "&" only (Python >= 3.10); counting them costs one C scan.
    count = text.count("&") + 1 if text else 0
    if count > MAX_FORM_PARAMS:
        raise HttpError(413, f"{where} of {count} params; the limit is {MAX_FORM_PARAMS}")


class HttpConnection:
    """The server side of one HTTP/1.1 connection (h11), one request at a time.

    Resource handling: does not own ``stream``; whoever made it closes it.
    """

    def __init__(self, stream: trio.abc.Stream, client: str, initial: bytes = b"") -> None:
        """``initial``: bytes already read from ``stream`` (by another worker that handed the
        connection over), parsed before anything is read."""
        self.stream = stream
        self.client = client
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self._request_bytes = bytearray()
        self._method = "GET"
        if initial:
            self._h11.receive_data(initial)

    def upgraded(self) -> None:
        """The connection is a WebSocket now: drop the HTTP parser and the request's bytes
        (~3 KB a call); from here only ``stream`` and ``client`` may be used."""
        del self._h11
        self._request_bytes = bytearray()

    @property
    def request_bytes(self) -> bytes:
        """Every byte received since the current request began (its head and anything after)."""
        return bytes(self._request_bytes)

    @property
    def request_complete(self) -> bool:
        """Whether the current request has been read to its end (else the connection must
        close after the response)."""
        return self._h11.their_state is h11.DONE

    @property
    def started(self) -> bool:
        """Whether any byte of the current request has arrived."""
        return bool(self._request_bytes)

    async def _next_event(self) -> h11.Event | type[h11.PAUSED]:
        while True:
            event = self._h11.next_event()
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            try:
                data = bytes(await self.stream.receive_some(_RECEIVE_SIZE))
            except trio.BrokenResourceError:
                data = b""
            self._request_bytes += data
            self._h11.receive_data(data)

    async def read_head(self) -> h11.Request | None:
        """The next request's head, or ``None`` when the client closed between requests.

        Raises:
            h11.RemoteProtocolError: malformed HTTP (``error_status_hint`` is the status to
                answer with: 400, also for ``Content-Length`` with ``Transfer-Encoding``; 431
                for a head over :data:`MAX_HEAD_BYTES`, however its bytes arrived). The
                response must close the connection.
        """
        self._request_bytes = bytearray(self._h11.trailing_data[0])
        event = await self._next_event()
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):  # pragma: no cover - h11 yields Request first
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}", 400)
        self._method = event.method.decode("ascii", "replace").upper()
        head_bytes = len(self._request_bytes) - len(self._h11.trailing_data[0])
        if head_bytes > MAX_HEAD_BYTES:
            raise h11.RemoteProtocolError(
                f"request head of {head_bytes} bytes; the limit is {MAX_HEAD_BYTES}", 431
            )
        names = {name for name, _ in event.headers}
        if b"content-length" in names and b"transfer-encoding" in names:
            raise h11.RemoteProtocolError(
                "both Content-Length and Transfer-Encoding (RFC 9112 §6.1); refused", 400
            )
        return event

    async def read_body(self, head: h11.Request) -> bytes:
        """The body of the request whose head was just read, at most :data:`MAX_BODY_BYTES`.

        Raises:
            HttpError: 413 when the body is (or declares itself) too large, 400 when the
                client closes before the body is complete.
            h11.RemoteProtocolError: malformed body framing.
        """
        for name, value in head.headers:
            if name == b"content-length" and int(value) > MAX_BODY_BYTES:
                raise HttpError(413, f"body of {int(value)} bytes; the limit is {MAX_BODY_BYTES}")
        body = bytearray()
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY_BYTES:
                    raise HttpError(413, f"body over the {MAX_BODY_BYTES}-byte limit")
            elif isinstance(event, h11.EndOfMessage):
                return bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                raise HttpError(400, "client closed the connection mid-body")
            else:  # pragma: no cover - h11 yields only Data/EndOfMessage here
                raise HttpError(400, f"unexpected {type(event).__name__} in body")

    async def respond(
        self,
        status: int,
        body: bytes = b"",
        *,
        content_type: str = "text/plain; charset=utf-8",
        headers: Sequence[tuple[str, str]] = (),
        close: bool = False,
    ) -> None:
        """Send one complete response (dropped if the client takes longer than
        :data:`SEND_TIMEOUT` seconds).

        A response is only sent when h11's state allows it (not after a response already
        began); the body is omitted for HEAD. ``close`` adds ``Connection: close``.

        Raises:
            trio.BrokenResourceError: the client has gone.
        """
        if self._h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        all_headers = [("content-type", content_type), ("content-length", str(len(body)))]
        all_headers += list(headers)
        if close:
            all_headers.append(("connection", "close"))
        phrase = http.HTTPStatus(status).phrase.encode("ascii")
        data = self._h11.send(h11.Response(status_code=status, headers=all_headers, reason=phrase))
        if body and self._method != "HEAD":
            data += self._h11.send(h11.Data(data=body)) or b""
        data += self._h11.send(h11.EndOfMessage()) or b""
        with trio.move_on_after(SEND_TIMEOUT):
            await self.stream.send_all(data or b"")

    async def linger(self) -> None:
        """Half-close, then discard what the client still sends (at most
        :data:`LINGER_TIMEOUT` seconds), so a response sent before the request was fully read
        is not lost to a TCP reset. Call before closing the connection."""
        if not isinstance(self.stream, trio.abc.HalfCloseableStream):
            return
        discarded = 0
        with trio.move_on_after(LINGER_TIMEOUT):
            try:
                await self.stream.send_eof()
                while discarded < _LINGER_BYTES:
                    data = await self.stream.receive_some(_RECEIVE_SIZE)
                    if not data:
                        break
                    discarded += len(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    def next_cycle(self) -> bool:
        """Get ready for the next request on this connection; False if it must close."""
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
            return True
        return False
