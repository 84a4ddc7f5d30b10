"""``dial``: play Plivo against a running callflow server, over real HTTP and WebSocket."""

from __future__ import annotations

import secrets
import ssl
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from urllib.parse import urlencode, urlsplit

import httpx
import trio
import trio_websocket
from lxml import etree

from callflow.audio import Audio
from callflow.protocol import Format
from callflow.server import WebSocketTransport, signature_v3
from callflow.testing._fake import FakePlivo


class AnswerError(Exception):
    """The answer webhook did not return a usable ``<Stream>``: the message says why.

    Attributes:
        status_code: the webhook's HTTP status when it answered with an error (403 for a
            refused signature, 404 for no flow at that path), else ``None``.
    """

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


@asynccontextmanager
async def dial(
    answer_url: str,
    *,
    params: Mapping[str, str] | None = None,
    auth_token: str | None = None,
    method: str = "POST",
    send_media: bool = True,
    prompts: Mapping[str, Audio] | None = None,
) -> AsyncIterator[FakePlivo]:
    """Call a callflow server the way Plivo does, and yield the :class:`FakePlivo` caller.

    POSTs (or GETs) ``answer_url`` with Plivo's answer params (``CallUUID``, ``From``, ``To``,
    ``Direction``, ``CallStatus``, plus ``params``), signed with ``X-Plivo-Signature-V3`` when
    ``auth_token`` is given (PROTOCOL.md §7); reads the ``<Stream>`` URL and ``contentType``
    from the XML; connects to that URL with a real WebSocket client and plays Plivo's side of
    the call there, in real time. ``prompts`` (names to :class:`Audio`) lets the caller name
    what it heard (see :class:`FakePlivo`).

    Raises:
        AnswerError: the webhook answered with an HTTP error or XML without a ``<Stream>``.
        trio_websocket.HandshakeError: the server refused the WebSocket.
    """
    call_id = str(uuid.uuid4())
    form = {
        "CallUUID": call_id,
        "From": "15550000001",
        "To": "15550000002",
        "Direction": "inbound",
        "CallStatus": "in-progress",
        **(params or {}),
    }
    call_id = form["CallUUID"]
    if method == "GET":  # Plivo sends the params in the query and signs the full URL
        separator = "&" if urlsplit(answer_url).query else "?"
        answer_url = f"{answer_url}{separator}{urlencode(form)}"
    headers = {}
    if auth_token:
        nonce = secrets.token_hex(10)
        headers["X-Plivo-Signature-V3-Nonce"] = nonce
        headers["X-Plivo-Signature-V3"] = signature_v3(
            auth_token,
            method=method,
            url=answer_url,
            params={k: [v] for k, v in form.items()} if method == "POST" else None,
            nonce=nonce,
        )
    async with httpx.AsyncClient(timeout=10.0) as client:
        if method == "POST":
            response = await client.post(answer_url, data=form, headers=headers)
        else:
            response = await client.get(answer_url, headers=headers)
    if response.status_code != 200:
        raise AnswerError(
            f"{method} {answer_url}: HTTP {response.status_code} {response.text[:200]!r}",
            status_code=response.status_code,
        )
    stream_url, fmt = stream_of(response.content)
    async with open_plivo_websocket(stream_url) as websocket:
        transport = WebSocketTransport(websocket)
        fake = FakePlivo(
            transport=transport,
            format=fmt,
            call_id=call_id,
            answer_params=form,
            send_media=send_media,
            prompts=prompts,
        )
        async with fake:
            yield fake


@asynccontextmanager
async def open_plivo_websocket(
    url: str, *, connect_timeout: float = 10.0
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """A WebSocket client connection to ``url`` (``ws://`` or ``wss://``), as Plivo opens one.

    Like ``trio_websocket.open_websocket_url``, but on a TCP stream this function owns and
    always closes: trio-websocket's client otherwise leaks its socket when the server closes
    first (the normal end of a call) or rejects the handshake.

    Raises:
        trio_websocket.HandshakeError: the server refused the upgrade (for example
            ``ConnectionRejected`` with ``status_code`` 403 for a missing or bad token).
        TimeoutError: no handshake within ``connect_timeout`` seconds.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"not a ws:// or wss:// URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    stream: trio.abc.Stream
    if parts.scheme == "wss":
        stream = await trio.open_ssl_over_tcp_stream(
            parts.hostname, port, ssl_context=ssl.create_default_context()
        )
    else:
        stream = await trio.open_tcp_stream(parts.hostname, port)
    connected = False
    try:
        async with stream, trio.open_nursery() as nursery:
            with trio.fail_after(connect_timeout):
                websocket = await trio_websocket.wrap_client_stream(
                    nursery, stream, parts.netloc, resource
                )
            connected = True
            try:
                yield websocket
            finally:
                with trio.move_on_after(2):
                    await websocket.aclose()
                await stream.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # a refused handshake surfaces from trio-websocket's reader task: unwrap it
        rejected = None if connected else group.subgroup(trio_websocket.HandshakeError)
        if rejected is None:
            raise
        leaf: BaseException = rejected
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        raise leaf from None


def stream_of(answer: bytes) -> tuple[str, Format]:
    """The ``<Stream>`` URL and audio format in an answer XML document.

    Raises:
        AnswerError: not XML, or no ``<Stream>`` with a ``ws(s)://`` URL and a known
            ``contentType``.
    """
    try:
        root = etree.fromstring(answer, parser=etree.XMLParser(resolve_entities=False))
    except etree.XMLSyntaxError as exc:
        raise AnswerError(f"answer is not XML: {exc}") from None
    stream = root.find("Stream")
    if stream is None or not (stream.text or "").strip().startswith(("ws://", "wss://")):
        raise AnswerError("answer XML has no <Stream> with a ws:// or wss:// URL")
    try:
        fmt = Format.from_content_type(stream.get("contentType", ""))
    except ValueError as exc:
        raise AnswerError(f"<Stream contentType>: {exc}") from None
    return stream.text.strip(), fmt
