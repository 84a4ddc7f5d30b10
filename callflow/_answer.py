"""The answer webhook's XML: ``<Response><Stream …>wss://…</Stream><Hangup/></Response>``."""

from __future__ import annotations

from lxml import etree

from callflow._flow import Flow

MAX_ANSWER_BYTES = 100 * 1024
"""Plivo reads at most 100 KB of answer XML (PROTOCOL.md §1)."""

MAX_STREAM_URL = 2048
"""Plivo's limit on the ``<Stream>`` URL (PROTOCOL.md §5)."""


def _bool(value: bool) -> str:
    return "true" if value else "false"


def stream_attributes(flow: Flow, *, status_callback_url: str | None = None) -> dict[str, str]:
    """The ``<Stream>`` attributes for ``flow``, as written into the XML (PROTOCOL.md §5).

    ``contentType`` is always written (Plivo's pages disagree on its default).
    ``status_callback_url`` is used when the flow does not name its own.
    """
    s = flow.stream
    attrs: dict[str, str] = {
        "bidirectional": _bool(s.bidirectional),
        "audioTrack": s.audio_track,
        "streamTimeout": str(s.stream_timeout),
        "contentType": s.format.content_type,
        "keepCallAlive": _bool(s.keep_call_alive),
    }
    callback = s.status_callback_url or status_callback_url
    if callback:
        attrs["statusCallbackUrl"] = callback
        attrs["statusCallbackMethod"] = s.status_callback_method
    if s.extra_headers:
        attrs["extraHeaders"] = s.extra_headers_text
    if s.noise_cancellation:
        attrs["noiseCancellation"] = "true"
        attrs["noiseCancellationLevel"] = str(s.noise_cancellation_level)
    return attrs


def answer_xml(flow: Flow, *, stream_url: str, status_callback_url: str | None = None) -> bytes:
    """The answer webhook's reply for ``flow``: UTF-8 XML bytes.

    ``stream_url`` is the full ``ws://``/``wss://`` URL of the flow's stream WebSocket
    (with its token query, if any). ``<Hangup/>`` follows the ``<Stream>``: with
    ``keepCallAlive="true"`` it runs once the stream ends, so closing the socket ends the call.

    Raises:
        ValueError: the stream URL is not ``ws(s)://`` or is over Plivo's 2048 characters, or the
            document is over Plivo's 100 KB.
    """
    if not stream_url.startswith(("ws://", "wss://")):
        raise ValueError(f"stream URL must be ws:// or wss://, not {stream_url!r}")
    if len(stream_url) > MAX_STREAM_URL:
        raise ValueError(f"stream URL is {len(stream_url)} chars; Plivo accepts {MAX_STREAM_URL}")
    response = etree.Element("Response")
    stream = etree.SubElement(
        response, "Stream", stream_attributes(flow, status_callback_url=status_callback_url)
    )
    stream.text = stream_url
    etree.SubElement(response, "Hangup")
    body: bytes = etree.tostring(response, xml_declaration=True, encoding="UTF-8")
    if len(body) > MAX_ANSWER_BYTES:
        raise ValueError(f"answer XML is {len(body)} bytes; Plivo reads at most {MAX_ANSWER_BYTES}")
    return body


def fallback_xml(message: str = "") -> bytes:
    """A polite answer when no flow can take the call (a draining server's ``speak:``
    answer): ``<Speak>`` a message, then hang up."""
    response = etree.Element("Response")
    if message:
        etree.SubElement(response, "Speak").text = message
    etree.SubElement(response, "Hangup")
    body: bytes = etree.tostring(response, xml_declaration=True, encoding="UTF-8")
    return body


def redirect_xml(url: str) -> bytes:
    """An answer that sends the call elsewhere: ``<Redirect method="POST">url</Redirect>``
    (Plivo fetches the call's XML from ``url``; a draining server's ``redirect:`` answer)."""
    response = etree.Element("Response")
    etree.SubElement(response, "Redirect", method="POST").text = url
    body: bytes = etree.tostring(response, xml_declaration=True, encoding="UTF-8")
    return body
