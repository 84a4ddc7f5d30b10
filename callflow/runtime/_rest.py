"""The few Plivo REST calls a live flow needs: hang up, transfer, and placing outbound calls.

PROTOCOL.md §8: base ``https://api.plivo.com/v1/Account/{auth_id}/``, HTTP Basic auth with
the Auth ID and Auth Token. Runs on httpx, which works under Trio.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import httpx

from callflow.runtime._errors import CallflowError

log = logging.getLogger("callflow.rest")

DEFAULT_API_URL = "https://api.plivo.com/v1"


class RestError(CallflowError):
    """Plivo's REST API refused or failed a request.

    Attributes:
        status_code: the HTTP status (0 when no response arrived).
        body: the start of the response body, for the log.
    """

    def __init__(self, message: str, status_code: int = 0, body: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class PlivoRest:
    """A small async client for Plivo's Call API (PROTOCOL.md §8).

    Args:
        auth_id: the Plivo Auth ID (``PLIVO_AUTH_ID``).
        auth_token: the Plivo Auth Token (``PLIVO_AUTH_TOKEN``).
        api_url: the API root, ``https://api.plivo.com/v1`` unless testing.
        timeout_s: per-request timeout in seconds: httpx's connect, read and write timeouts,
            and the bound callflow puts on the REST hangup that ends a call as a whole.
    """

    def __init__(
        self,
        auth_id: str,
        auth_token: str,
        *,
        api_url: str = DEFAULT_API_URL,
        timeout_s: float = 10.0,
    ) -> None:
        self.auth_id = auth_id
        self._auth = (auth_id, auth_token)
        self._base = f"{api_url.rstrip('/')}/Account/{auth_id}/"
        self.timeout_s = timeout_s

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PlivoRest | None:
        """A client from ``PLIVO_AUTH_ID`` and ``PLIVO_AUTH_TOKEN`` (and, for tests,
        ``PLIVO_API_URL``); ``None`` when either credential is missing."""
        env = os.environ if environ is None else environ
        auth_id, auth_token = env.get("PLIVO_AUTH_ID"), env.get("PLIVO_AUTH_TOKEN")
        if not auth_id or not auth_token:
            return None
        return cls(auth_id, auth_token, api_url=env.get("PLIVO_API_URL", DEFAULT_API_URL))

    async def _request(
        self, method: str, path: str, data: Mapping[str, str] | None = None
    ) -> httpx.Response:
        try:
            async with httpx.AsyncClient(auth=self._auth, timeout=self.timeout_s) as client:
                return await client.request(method, self._base + path, json=data)
        except httpx.HTTPError as exc:
            raise RestError(f"{method} {path}: {exc}") from exc

    async def hangup(self, call_uuid: str) -> bool:
        """Hang up a call: ``DELETE Call/{call_uuid}/``.

        Returns:
            True if Plivo hung it up (204), False if it was already gone (404).

        Raises:
            RestError: any other answer, or no answer.
        """
        response = await self._request("DELETE", f"Call/{call_uuid}/")
        if response.status_code in (200, 204):
            return True
        if response.status_code == 404:
            return False
        raise RestError(
            f"hangup of call {call_uuid}: HTTP {response.status_code}",
            response.status_code,
            response.text[:200],
        )

    async def transfer(self, call_uuid: str, url: str, *, method: str = "POST") -> None:
        """Transfer a call to new XML: ``POST Call/{call_uuid}/`` with ``legs=aleg``,
        ``aleg_url`` and ``aleg_method``. Plivo fetches ``url`` and runs what it returns.

        Raises:
            RestError: Plivo did not accept the transfer.
        """
        response = await self._request(
            "POST", f"Call/{call_uuid}/", {"legs": "aleg", "aleg_url": url, "aleg_method": method}
        )
        if response.status_code not in (200, 202):
            raise RestError(
                f"transfer of call {call_uuid}: HTTP {response.status_code}",
                response.status_code,
                response.text[:200],
            )

    async def make_call(
        self,
        from_: str,
        to: str,
        answer_url: str,
        *,
        machine_detection_url: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> str:
        """Place an outbound call: ``POST Call/`` (PROTOCOL.md §8). With
        ``machine_detection_url``, Plivo also detects answering machines and POSTs
        ``Machine=true`` there (seed ``004_…``), which callflow's server hands to the live flow.

        Returns:
            The ``request_uuid`` Plivo gives the call.

        Raises:
            RestError: Plivo refused the call.
        """
        data = {"from": from_, "to": to, "answer_url": answer_url, "answer_method": "POST"}
        if machine_detection_url:
            data |= {"machine_detection": "true", "machine_detection_url": machine_detection_url}
        data |= dict(extra or {})
        response = await self._request("POST", "Call/", data)
        if response.status_code not in (200, 201):
            raise RestError(
                f"call to {to}: HTTP {response.status_code}",
                response.status_code,
                response.text[:200],
            )
        body = response.json()
        request_uuid = body.get("request_uuid", "")
        return str(request_uuid[0] if isinstance(request_uuid, list) else request_uuid)
