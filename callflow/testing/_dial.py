"""``dial``: play Plivo against a running callflow server, over real HTTP and WebSocket."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
import trio_websocket
from lxml import etree

from callflow.protocol import Format
from callflow.server import WebSocketTransport, signature_v3
from callflow.testing._fake import FakePlivo


class AnswerError(Exception):
    """The answer webhook did not return a usable ``<Stream>``: the message says why."""


@asynccontextmanager
async def dial(
    answer_url: str,
    *,
    params: Mapping[str, str] | None = None,
    auth_token: str | None = None,
    method: str = "POST",
    send_media: bool = True,
) -> AsyncIterator[FakePlivo]:
    """Call a callflow server the way Plivo does, and yield the :class:`FakePlivo` caller.

    POSTs (or GETs) ``answer_url`` with Plivo's answer params (``CallUUID``, ``From``, ``To``,
    ``Direction``, ``CallStatus``, plus ``params``), signed with ``X-Plivo-Signature-V3`` when
    ``auth_token`` is given (PROTOCOL.md §7); reads the ``<Stream>`` URL and ``contentType``
    from the XML; connects to that URL with a real WebSocket client and plays Plivo's side of
    the call there, in real time.

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
            response = await client.get(answer_url, params=form, headers=headers)
    if response.status_code != 200:
        raise AnswerError(f"{method} {answer_url}: HTTP {response.status_code} {response.text[:200]!r}")
    stream_url, fmt = stream_of(response.content)
    async with trio_websocket.open_websocket_url(stream_url) as websocket:
        transport = WebSocketTransport(websocket)
        fake = FakePlivo(
            transport=transport, format=fmt, call_id=call_id, answer_params=form,
            send_media=send_media,
        )
        async with fake:
            yield fake


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
