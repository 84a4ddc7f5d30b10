"""Plivo request signatures, version 3 (``X-Plivo-Signature-V3``; PROTOCOL.md §7).

Plivo signs every HTTP request it makes to callflow (answer webhook, status callbacks) with
``base64(HMAC-SHA256(key=auth_token, msg=S))`` where ``S`` is built from the full URL Plivo
called, the form parameters and a nonce. The rules, as Plivo's own ``plivo`` package
(``plivo.utils.signature_v3``) applies them:

1. ``scheme://host[:port]/path`` (no query, no fragment).
2. GET (or POST with no form params): when the URL has a query, ``?`` and the query pairs
   sorted by key (values URL-decoded, each key's values sorted) as ``k=v`` joined by ``&``.
3. POST with form params: ``?``, then the sorted query followed by ``.`` when there is a
   query, then the form params sorted by key, each written ``keyvalue`` with no separator.
4. ``.`` and the nonce.

Pure functions, no IO.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import parse_qs, urlparse, urlunparse

Params = Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]]
"""Form parameters: a mapping (a key to one value or to several) or ``(key, value)`` pairs,
as :func:`urllib.parse.parse_qsl` returns them (repeated keys allowed)."""

SIGNATURE_HEADER = "X-Plivo-Signature-V3"
NONCE_HEADER = "X-Plivo-Signature-V3-Nonce"


def _multi(params: Params | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if params is None:
        return out
    if isinstance(params, Mapping):
        for key, value in params.items():
            values = [value] if isinstance(value, str) else list(value)
            out.setdefault(key, []).extend(values)
    else:
        for key, value in params:
            out.setdefault(key, []).append(value)
    return out


def _sorted_query(params: Mapping[str, list[str]]) -> str:
    return "&".join(f"{key}={value}" for key in sorted(params) for value in sorted(params[key]))


def _sorted_form(params: Mapping[str, list[str]]) -> str:
    return "".join(f"{key}{value}" for key in sorted(params) for value in sorted(params[key]))


def string_to_sign(*, method: str, url: str, params: Params | None = None, nonce: str) -> str:
    """The message ``S`` that Signature V3 signs (PROTOCOL.md §7, rules 1-4).

    ``url`` is the full URL Plivo called, query included. For GET, ``params`` is merged into
    the URL's query (the query wins for a key present in both, as Plivo's SDK does); for
    POST, ``params`` are the form-body params.

    Raises:
        ValueError: ``method`` is neither GET nor POST (any case).
    """
    verb = method.upper()
    if verb not in ("GET", "POST"):
        raise ValueError(f"Plivo signs GET and POST requests only, not {method!r}")
    parts = urlparse(url)
    base = urlunparse((parts.scheme, parts.netloc, parts.path, "", "", ""))
    query = parse_qs(parts.query, keep_blank_values=True)
    form = _multi(params)
    if verb == "GET" or not form:
        merged = form if verb == "GET" else {}
        merged.update(query)
        text = _sorted_query(merged)
        if text:
            base += "?" + text
    else:
        text = _sorted_query(query)
        base += "?" + (text + "." if text else "") + _sorted_form(form)
    return f"{base}.{nonce}"


def signature_v3(
    auth_token: str, *, method: str, url: str, params: Params | None = None, nonce: str
) -> str:
    """The base64 Signature V3 that Plivo sends for this request (PROTOCOL.md §7).

    Args:
        auth_token: the Plivo (sub)account auth token, the HMAC key.
        method: ``GET`` or ``POST``.
        url: the full URL Plivo called (``scheme://host[:port]/path?query``).
        params: the form params of a POST (see :func:`string_to_sign` for GET).
        nonce: the ``X-Plivo-Signature-V3-Nonce`` header.

    Raises:
        ValueError: ``method`` is neither GET nor POST.
    """
    message = string_to_sign(method=method, url=url, params=params, nonce=nonce)
    digest = hmac.new(auth_token.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def validate_signature_v3(
    auth_token: str,
    *,
    method: str,
    url: str,
    params: Params | None = None,
    nonce: str,
    header: str,
) -> bool:
    """Whether ``header`` (``X-Plivo-Signature-V3``) signs this request (PROTOCOL.md §7).

    The header may hold several comma-separated signatures (Plivo sends one per auth token
    during a token rotation); the request is valid when any of them, spaces trimmed, equals
    the computed one. Every candidate is compared in constant time.

    Raises:
        ValueError: ``method`` is neither GET nor POST.
    """
    expected = signature_v3(auth_token, method=method, url=url, params=params, nonce=nonce).encode(
        "ascii"
    )
    valid = False
    for candidate in header.split(","):
        if hmac.compare_digest(expected, candidate.strip().encode("utf-8", "replace")):
            valid = True
    return valid
