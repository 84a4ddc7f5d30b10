"""The short-lived stream token that callflow writes into the ``<Stream>`` URL (PROTOCOL.md §7).

Which URL Plivo signs on the WebSocket upgrade is not documented, so callflow does not rely
on it: the answer webhook, whose request Plivo *does* sign, writes its own token into the
stream URL, and the WebSocket upgrade is accepted only with a valid one. The token also
**carries the answer webhook's form params** (DESIGN.md "Several processes"): nothing a call
needs lives only in the memory of the process that answered, so any worker can take the
stream.

Format (query parameter ``t``)::

    <payload>.<signature>
    payload   = base64url(JSON {"p": stream path, "c": CallUUID or null,
                                "e": expiry (Unix seconds, int), "a": {answer params},
                                "i": issued (Unix milliseconds, int; optional)})
    signature = base64url(HMAC-SHA256(key, payload))     (empty when unsigned)
    key       = HMAC-SHA256(key=auth token, msg=b"callflow stream token v1")

base64url is written without ``=`` padding, so the token needs no URL escaping. The key is
derived from the Plivo auth token with a label, so a token signature can never be replayed
as a Plivo request signature or the other way round.

Without an auth token (development mode) tokens are written unsigned and any signature is
ignored; expiry and path are still checked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping

import attrs

TOKEN_QUERY_KEY = "t"
"""The query parameter that carries the token in the stream URL."""

DEFAULT_TTL = 300.0
"""Seconds a token stays valid after the answer webhook wrote it."""

ESSENTIAL_PARAMS = (
    "CallUUID",
    "From",
    "To",
    "Direction",
    "CallStatus",
    "ALegUUID",
    "ALegRequestUUID",
)
"""The answer params a token keeps when the stream URL would be too long with all of them."""

_KEY_LABEL = b"callflow stream token v1"


class StreamTokenError(Exception):
    """A stream token failed verification.

    Attributes:
        reason: what is wrong, for logs and the 403 body: ``missing``, ``malformed: …``,
            ``unsigned``, ``bad signature``, ``expired …``, ``wrong path …``.
        call_uuid: the CallUUID the token was written for, when it can be trusted (the
            signature checked out, or none is checked in development mode) and the token
            was refused anyway (``expired``, ``wrong path``); else ``None``.
    """

    def __init__(self, reason: str, *, call_uuid: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.call_uuid = call_uuid


@attrs.frozen
class StreamToken:
    """A verified stream token.

    Attributes:
        path: the stream path the token was written for (``/support/stream``).
        call_uuid: the answer webhook's ``CallUUID``, or ``None`` if it had none.
        expires_at: expiry, Unix time in whole seconds.
        params: the answer webhook's params (all of them, or :data:`ESSENTIAL_PARAMS` when the
            URL had to be shortened).
        signed: whether the token carried a signature that was checked.
        issued_at: when the answer webhook wrote it, Unix seconds (to the millisecond), or
            ``None`` for a token without the field.
    """

    path: str
    call_uuid: str | None
    expires_at: int
    params: Mapping[str, str]
    signed: bool
    issued_at: float | None = None


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(auth_token: str) -> bytes:
    return hmac.new(auth_token.encode(), _KEY_LABEL, hashlib.sha256).digest()


def _sign(auth_token: str, payload: str) -> str:
    return _b64encode(hmac.new(_key(auth_token), payload.encode("ascii"), hashlib.sha256).digest())


def make_stream_token(
    path: str,
    params: Mapping[str, str],
    *,
    auth_token: str | None,
    ttl: float = DEFAULT_TTL,
    now: float | None = None,
) -> str:
    """A token for the stream WebSocket at ``path``, carrying the answer ``params``.

    Args:
        path: the flow's stream path, e.g. ``/support/stream``.
        params: the answer webhook's params; ``params["CallUUID"]`` becomes the token's call.
        auth_token: the Plivo auth token; ``None`` writes an unsigned token (development).
        ttl: seconds until the token expires (rounded up to whole seconds).
        now: the current Unix time in seconds (default :func:`time.time`).
    """
    issued = time.time() if now is None else now
    body = {
        "p": path,
        "c": params.get("CallUUID"),
        "e": int(issued + ttl + 0.999),
        "a": dict(params),
        "i": int(issued * 1000),
    }
    payload = _b64encode(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    signature = _sign(auth_token, payload) if auth_token is not None else ""
    return f"{payload}.{signature}"


def verify_stream_token(
    token: str | None,
    *,
    path: str,
    auth_token: str | None,
    now: float | None = None,
    live: Callable[[str], bool] | None = None,
) -> StreamToken:
    """Check ``token`` for a WebSocket upgrade at ``path`` and return what it carries.

    With ``auth_token`` the signature is checked first, before the payload is decoded;
    without one (development mode) any signature is ignored. Expiry and path are always
    checked, but the expiry bounds only the first connection: a token for a call that
    ``live(call_uuid)`` says runs here is accepted however old it is (Plivo's retry of a
    dropped stream, any time into the call; docs/reconnect.md). A token for a call that has
    ended is refused by the stream itself (``run_call``), not here.

    Raises:
        StreamTokenError: the token is missing, malformed, unsigned or wrongly signed (with an
            auth token), expired, or written for another path; ``reason`` says which. A
            token that is not ASCII is ``malformed`` (checked before anything else).
    """
    if not token:
        raise StreamTokenError("missing")
    if not token.isascii():  # base64url and its signature are ASCII; anything else is forged
        raise StreamTokenError("malformed: not ASCII")
    payload, dot, signature = token.partition(".")
    if not dot or not payload:
        raise StreamTokenError("malformed: expected <payload>.<signature>")
    if auth_token is not None:
        if not signature:
            raise StreamTokenError("unsigned")
        expected = _sign(auth_token, payload)
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise StreamTokenError("bad signature")
    try:
        body = json.loads(_b64decode(payload))
    except (binascii.Error, ValueError) as exc:
        raise StreamTokenError(f"malformed: payload is not base64url JSON ({exc})") from None
    token_path, call_uuid, expires_at, params = _fields(body)
    current = time.time() if now is None else now
    if expires_at < current and not (
        call_uuid is not None and live is not None and live(call_uuid)
    ):
        raise StreamTokenError(f"expired {current - expires_at:.0f} s ago", call_uuid=call_uuid)
    if token_path != path:
        raise StreamTokenError(
            f"wrong path: token is for {token_path!r}, not {path!r}", call_uuid=call_uuid
        )
    issued_ms = body.get("i")
    return StreamToken(
        path=token_path,
        call_uuid=call_uuid,
        expires_at=expires_at,
        params=params,
        signed=auth_token is not None,
        issued_at=issued_ms / 1000
        if isinstance(issued_ms, int) and not isinstance(issued_ms, bool)
        else None,
    )


def token_call(token: str) -> str | None:
    """The CallUUID a stream token names, read without checking it: for choosing where the
    stream goes only (whoever serves it checks it with :func:`verify_stream_token`). None
    for a token that names no call or cannot be read."""
    try:
        body = json.loads(_b64decode(token.partition(".")[0]))
    except (binascii.Error, ValueError):
        return None
    call = body.get("c") if isinstance(body, dict) else None
    return call if isinstance(call, str) and call else None


def _fields(body: object) -> tuple[str, str | None, int, dict[str, str]]:
    if not isinstance(body, dict):
        raise StreamTokenError("malformed: payload is not a JSON object")
    path, call_uuid, expires_at, params = (body.get(k) for k in ("p", "c", "e", "a"))
    if not isinstance(path, str):
        raise StreamTokenError("malformed: 'p' (path) is not a string")
    if call_uuid is not None and not isinstance(call_uuid, str):
        raise StreamTokenError("malformed: 'c' (CallUUID) is not a string")
    if not isinstance(expires_at, int) or isinstance(expires_at, bool):
        raise StreamTokenError("malformed: 'e' (expiry) is not an integer")
    if not isinstance(params, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in params.items()
    ):
        raise StreamTokenError("malformed: 'a' (answer params) is not an object of strings")
    return path, call_uuid, expires_at, params


def essential_params(params: Mapping[str, str]) -> dict[str, str]:
    """The subset of ``params`` named in :data:`ESSENTIAL_PARAMS`."""
    return {key: params[key] for key in ESSENTIAL_PARAMS if key in params}
