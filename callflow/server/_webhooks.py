"""Plivo's webhooks: the answer URL (``<Stream>`` XML out), stream status callbacks
(PROTOCOL.md §6) and machine-detection callbacks (seed ``004_…``), each checked against
``X-Plivo-Signature-V3`` when an auth token is set (PROTOCOL.md §7).

Status and machine-detection callbacks reach the live flow of their call through
:class:`~callflow.runtime.LiveCalls`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from callflow._answer import MAX_STREAM_URL, answer_xml
from callflow._flow import Flow
from callflow.observe import METRICS, bind_call, call_label, escape, quote
from callflow.runtime import LiveCalls
from callflow.server._drain import DrainAnswer
from callflow.server._http import HttpError, Request
from callflow.server._replay import CallNonces, NonceCache, Seen
from callflow.server._routes import call_query
from callflow.server._signature import NONCE_HEADER, SIGNATURE_HEADER, validate_signature_v3
from callflow.server._token import (
    TOKEN_QUERY_KEY,
    essential_params,
    make_stream_token,
)

log = logging.getLogger("callflow.server")

_HOST_RE = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


def check_public_url(url: str) -> str:
    """``url`` as a public base: ``http(s)://host[:port]`` without a trailing slash.

    Raises:
        ValueError: another scheme, or a path, query or fragment.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"public URL must be http(s)://host[:port], not {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"public URL must have no path, query or fragment: {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


class Webhooks:
    """The answer, status and machine-detection handlers (one set per server).

    Attributes:
        local_authority: ``host:port`` of the listener, the ``Host`` fallback; set once bound.
    """

    def __init__(
        self,
        *,
        public_url: str | None,
        auth_token: str | None,
        token_ttl: float,
        live_calls: LiveCalls,
        nonces: NonceCache | None = None,
    ) -> None:
        self.public_url = check_public_url(public_url) if public_url else None
        self.auth_token = auth_token or None
        self.token_ttl = token_ttl
        self.live_calls = live_calls
        self.local_authority = "127.0.0.1"
        self.nonces = nonces if nonces is not None else NonceCache.from_env()
        """The Signature V3 nonces accepted within the window (``_replay``), shared by the
        workers of a host when :data:`~callflow.server._replay.NONCE_FILE_ENV` is set."""
        self.call_nonces = CallNonces()
        """The callback nonces of each live call, for as long as it lives."""

    def _params(self, request: Request) -> tuple[list[tuple[str, str]], dict[str, str]]:
        """(the params Plivo signed, all params for the flow: query then form, form winning)."""
        query = request.query_params()
        form = request.form_params() if request.method == "POST" else []
        return form, {**dict(query), **dict(form)}

    def _callback(
        self, request: Request, flow: Flow, kind: str, what: str
    ) -> tuple[str, dict[str, str]]:
        """A call's callback (``kind`` ``status`` or ``machine``): its params, signature and
        nonce checked, and its ``CallUUID``, which this request's log lines then carry.

        Raises:
            HttpError: 403 as :meth:`_check_signature`; 400 without ``CallUUID``.
        """
        signed, params = self._params(request)
        bind_call(call_id=params.get("CallUUID"), flow=flow.path)  # for this request's lines
        self._check_signature(request, signed, params, kind)
        call_uuid = params.get("CallUUID")
        if not call_uuid:
            raise HttpError(400, f"{call_label(None)} {what}: field CallUUID missing")
        return call_uuid, params

    def _check_signature(
        self,
        request: Request,
        signed: Sequence[tuple[str, str]],
        params: Mapping[str, str],
        kind: str = "answer",
    ) -> None:
        """Check ``X-Plivo-Signature-V3``, then that its nonce is new (signature first: a
        nonce is remembered only once its request is known to be Plivo's).

        Raises:
            HttpError: 403 for a missing header, a bad signature or a nonce already used
                (a replay); 503 when the nonce table has no room (see ``_replay``).
        """
        if self.auth_token is None:
            return
        call = call_label(params.get("CallUUID"))
        header = request.headers.get(SIGNATURE_HEADER.lower())
        nonce = request.headers.get(NONCE_HEADER.lower())
        if header is None or nonce is None:
            missing = SIGNATURE_HEADER if header is None else NONCE_HEADER
            raise HttpError(403, f"{call} header {missing} missing")
        url = self.public_base(request) + request.target
        if not validate_signature_v3(
            self.auth_token,
            method=request.method,
            url=url,
            params=list(signed),
            nonce=nonce,
            header=header,
        ):
            raise HttpError(
                403,
                f"{call} field {SIGNATURE_HEADER}: signature does not match {request.method} "
                f"{escape(url)} (is --public-url the URL Plivo calls?)",
            )
        seen = self.nonces.check_and_add(nonce)
        if seen is Seen.NEW and kind != "answer":
            live = self.live_calls.get(params.get("CallUUID") or "")
            if live is not None:
                seen = self.call_nonces.check_and_add(live, nonce)
        if seen is Seen.REPLAY:
            METRICS.webhook_replays_refused_total.labels(kind=kind).inc()
            raise HttpError(
                403, f"{call} header {NONCE_HEADER}: nonce already used (a replayed request)"
            )
        if seen is Seen.FULL:
            raise HttpError(
                503, f"{call} no room to remember the nonce; retry", [("retry-after", "1")]
            )

    def answer(self, request: Request, flow: Flow) -> tuple[int, bytes, str]:
        """The answer webhook: (status, ``<Stream>`` XML, content type).

        Raises:
            HttpError: 403 for a bad signature or a replayed nonce, 400 for a malformed ``Host``.
        """
        signed, params = self._params(request)
        bind_call(call_id=params.get("CallUUID"), flow=flow.path)  # for this request's lines
        try:
            self._check_signature(request, signed, params)
        except HttpError:
            METRICS.for_flow(flow.path).outcomes["refused"].inc()
            raise
        call_uuid = params.get("CallUUID")
        if call_uuid is None:
            log.warning(
                "%s answer %s: field CallUUID missing from the answer params",
                call_label(None),
                flow.path,
            )
        base = self.public_base(request)
        stream_url = self._stream_url(base, flow, params)
        call_query_text = call_query(call_uuid)
        status_url = base + flow.status_path + (f"?{call_query_text}" if call_query_text else "")
        xml = answer_xml(flow, stream_url=stream_url, status_callback_url=status_url)
        log.info(
            "%s answer %s %s: %s call from %s to %s; flow %s",
            call_label(call_uuid),
            request.method,
            flow.path,
            escape(params.get("Direction", "?"), 20),
            escape(params.get("From", "?"), 40),
            escape(params.get("To", "?"), 40),
            flow.name,
        )
        return 200, xml, "application/xml"

    def drain_answer(
        self, request: Request, flow: Flow, answer: DrainAnswer
    ) -> tuple[int, bytes, str]:
        """An answer webhook while the server drains: ``answer``'s reply instead of a stream
        (the signature is still checked).

        Raises:
            HttpError: 403 for a bad signature or a replayed nonce.
        """
        signed, params = self._params(request)
        bind_call(call_id=params.get("CallUUID"), flow=flow.path)  # for this request's lines
        self._check_signature(request, signed, params)
        METRICS.for_flow(flow.path).outcomes["refused"].inc()
        log.info(
            "%s answer %s %s: draining, so no new call here: answered %s",
            call_label(params.get("CallUUID")),
            request.method,
            flow.path,
            "HTTP 503" if answer.kind == "unavailable" else f"<{answer.kind.capitalize()}>",
        )
        return answer.response()

    def _stream_url(self, base: str, flow: Flow, params: Mapping[str, str]) -> str:
        ws_base = (
            "wss" + base[len("https") :]
            if base.startswith("https:")
            else ("ws" + base[len("http") :])
        )

        call_query_text = call_query(params.get("CallUUID"))
        extra = f"&{call_query_text}" if call_query_text else ""

        def build(carried: Mapping[str, str]) -> str:
            token = make_stream_token(
                flow.stream_path, carried, auth_token=self.auth_token, ttl=self.token_ttl
            )
            return f"{ws_base}{flow.stream_path}?{TOKEN_QUERY_KEY}={token}{extra}"

        url = build(params)
        if len(url) <= MAX_STREAM_URL:
            return url
        kept = essential_params(params)
        url = build(kept)
        dropped = sorted(set(params) - set(kept))
        log.warning(
            "%s answer %s: the stream URL would exceed Plivo's %d chars with every answer "
            "param; the token carries only %s (dropped: %s)",
            call_label(params.get("CallUUID")),
            flow.path,
            MAX_STREAM_URL,
            ", ".join(kept),
            escape(", ".join(dropped)),
        )
        if len(url) > MAX_STREAM_URL:
            raise HttpError(500, f"stream URL is {len(url)} chars even with essential params")
        return url

    def status(self, request: Request, flow: Flow) -> tuple[int, bytes, str]:
        """A stream status callback, handed to the call's flow when it is live here.

        Raises:
            HttpError: 403 for a bad signature or a replayed nonce, 400 without ``CallUUID``.
        """
        call_uuid, params = self._callback(request, flow, "status", "status callback")
        extra = "".join(
            f" {key}={escape(params[key])}" for key in ("StatusReason", "Error") if params.get(key)
        )
        event = escape(params.get("Event", "?"), 40)
        log.info(
            "%s status %s StreamID=%s%s (flow %s)",
            call_label(call_uuid),
            event,
            escape(params.get("StreamID", "?"), 64),
            extra,
            flow.path,
        )
        if not self.live_calls.deliver_status(call_uuid, params):
            log.debug("%s status %s: no live call here", call_label(call_uuid), event)
        return 200, b"", "text/plain; charset=utf-8"

    def machine(self, request: Request, flow: Flow) -> tuple[int, bytes, str]:
        """Plivo's machine-detection callback (``Machine=true``, seed ``004_…``), handed to
        the live flow of that call (``Call.wait_machine``).

        Raises:
            HttpError: 403 for a bad signature or a replayed nonce, 400 without ``CallUUID``.
        """
        call_uuid, params = self._callback(request, flow, "machine", "machine detection")
        log.info(
            "%s machine detection Machine=%s (flow %s)",
            call_label(call_uuid),
            escape(params.get("Machine", "?"), 20),
            flow.path,
        )
        if not self.live_calls.deliver_machine(call_uuid, params):
            log.info("%s machine detection: no live call here", call_label(call_uuid))
        return 200, b"", "text/plain; charset=utf-8"

    def public_base(self, request: Request) -> str:
        """The public ``scheme://host[:port]`` the request was sent to: ``--public-url``, else
        ``X-Forwarded-Proto`` (default ``http``) and ``X-Forwarded-Host`` or ``Host``.

        Raises:
            HttpError: 400 for a malformed ``Host``.
        """
        if self.public_url is not None:
            return self.public_url
        return base_from_headers(request.headers, self.local_authority)


def base_from_headers(headers: Mapping[str, str], fallback_authority: str) -> str:
    """``proto://host`` from ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` / ``Host``.

    Raises:
        HttpError: 400 for a malformed host.
    """
    proto = headers.get("x-forwarded-proto", "http").split(",")[0].strip().lower()
    if proto not in ("http", "https"):
        proto = "http"
    host = headers.get("x-forwarded-host") or headers.get("host") or fallback_authority
    host = host.split(",")[0].strip()
    if not _HOST_RE.match(host):
        raise HttpError(400, f"field Host: malformed {quote(host)}")
    return f"{proto}://{host}"
