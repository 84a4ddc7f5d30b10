"""Replay protection for signed webhooks: each Signature V3 nonce is accepted once.

Plivo sends a fresh ``X-Plivo-Signature-V3-Nonce`` with every request it signs (PROTOCOL.md
§7), and the nonce is part of what is signed, so a replayed request carries a nonce already
seen. The nonce says nothing about *when* it was made, so the rule has two parts:

1. **A window** (:data:`DEFAULT_WINDOW`, 600 s: twice the stream token's lifetime): a nonce
   whose signature checked out is remembered that long, and any request with it is refused
   (403). The table is bounded (:data:`DEFAULT_CAPACITY` nonces); when the place a nonce
   hashes to is full of nonces still inside the window, the request is refused too (503,
   ``Retry-After``) rather than forgetting a fresh nonce: a full table never lets a replay
   through. 65 536 nonces in 600 s is about 109 signed webhooks a second, far beyond what one
   server's calls make (a call makes a handful).
2. **The life of the call**: a status or machine-detection callback acts only on a live call
   of its ``CallUUID``, and the nonces of each live call's callbacks are also kept with the
   call, for as long as it lives (:class:`CallNonces`). So a callback replayed later than the
   window either finds its call still live, and is refused, or finds it gone, and does
   nothing (200, no flow sees it). An answer webhook replayed later than the window cannot
   start a second flow for a call that is live here (refused, 403); for a call that has
   ended it yields a stream token for that dead call, on which no audio reaches anyone and
   whose REST actions fail.

**Several workers** on one host share one table: a file of fixed-size slots mapped into
every worker's memory (``mmap``), each check-and-insert under an exclusive ``flock`` of the
file. The supervisor names the file in the environment variable :data:`NONCE_FILE_ENV`
before the workers start; without it the table lives in the process's own memory. Hosts
share nothing: a load balancer that hashes on the call sends a call's webhooks to one host.

Slots: 16 bytes of BLAKE2b digest of the nonce, 8 bytes of expiry (Unix seconds, float64);
open addressing with at most :data:`PROBES` slots looked at per nonce, so one check costs a
few microseconds and never holds the event loop.
"""

from __future__ import annotations

import enum
import fcntl
import hashlib
import mmap
import os
import struct
import time
import weakref
from collections.abc import Callable

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_WINDOW",
    "NONCE_FILE_ENV",
    "CallNonces",
    "NonceCache",
    "Seen",
]

DEFAULT_WINDOW = 600.0
"""Seconds a nonce is remembered after its request was accepted."""

DEFAULT_CAPACITY = 1 << 16
"""Nonces the table holds (a power of two); 1.5 MB of slots."""

PROBES = 32
"""Slots looked at for one nonce (from the one it hashes to)."""

NONCE_FILE_ENV = "CALLFLOW_NONCE_FILE"
"""The environment variable naming the file the workers of one host share the table in."""

MAX_NONCES_PER_CALL = 1024
"""Callback nonces kept with one live call; past that, its callbacks are refused."""

_SLOT = struct.Struct("<16sd")
_EMPTY = bytes(16)


class Seen(enum.Enum):
    """What :meth:`NonceCache.check_and_add` found."""

    NEW = "new"
    """Not seen within the window; now remembered."""
    REPLAY = "replay"
    """Seen within the window."""
    FULL = "full"
    """Not seen, but no room without forgetting a nonce still inside the window."""


class NonceCache:
    """The nonces of accepted signed webhooks, for :data:`DEFAULT_WINDOW` seconds.

    Args:
        window: seconds a nonce is remembered.
        capacity: slots (rounded up to a power of two).
        path: a file to share the table with other processes (created and sized if need
            be); ``None`` keeps it in this process's memory.
        clock: Unix seconds (default :func:`time.time`: with a shared file, every process
            must agree on the time).

    Resource handling: with ``path``, holds the file open and mapped until :meth:`close`.
    """

    def __init__(
        self,
        *,
        window: float = DEFAULT_WINDOW,
        capacity: int = DEFAULT_CAPACITY,
        path: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window = window
        self.capacity = 1 << max(capacity - 1, 1).bit_length()
        self.clock = clock
        self.path = path
        size = self.capacity * _SLOT.size
        self._fd: int | None = None
        self._table: mmap.mmap | bytearray
        if path is None:
            self._table = bytearray(size)
        else:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                if os.fstat(self._fd).st_size != size:
                    os.ftruncate(self._fd, size)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._table = mmap.mmap(self._fd, size)

    @classmethod
    def from_env(cls) -> NonceCache:
        """A cache in the file :data:`NONCE_FILE_ENV` names, else in this process's memory."""
        return cls(path=os.environ.get(NONCE_FILE_ENV) or None)

    def close(self) -> None:
        """Unmap and close the shared file (no-op for an in-memory table)."""
        if self._fd is not None:
            assert isinstance(self._table, mmap.mmap)
            self._table.close()
            os.close(self._fd)
            self._fd = None

    def check_and_add(self, nonce: str) -> Seen:
        """Whether ``nonce`` was seen within the window; remembers it when it was not (and
        there is room)."""
        digest = hashlib.blake2b(nonce.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        now = self.clock()
        if self._fd is None:
            return self._check_and_add(digest, now)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            return self._check_and_add(digest, now)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _check_and_add(self, digest: bytes, now: float) -> Seen:
        table = self._table
        mask = self.capacity - 1
        start = int.from_bytes(digest[:8], "little")
        free = -1
        for probe in range(PROBES):
            offset = ((start + probe) & mask) * _SLOT.size
            held, expires = _SLOT.unpack_from(table, offset)
            if expires > now:
                if held == digest:
                    return Seen.REPLAY
            elif free < 0:
                free = offset
            if held == _EMPTY:
                break  # nothing was ever stored past an empty slot
        if free < 0:
            return Seen.FULL
        _SLOT.pack_into(table, free, digest, now + self.window)
        return Seen.NEW


class CallNonces:
    """The callback nonces of each live call, kept as long as the call object lives.

    Keyed by the call object itself (weakly), so nothing outlives the call and a new call
    that reuses a CallUUID starts afresh.
    """

    def __init__(self) -> None:
        self._by_call: weakref.WeakKeyDictionary[object, set[str]] = weakref.WeakKeyDictionary()

    def check_and_add(self, call: object, nonce: str) -> Seen:
        """Whether ``call`` already had a callback with ``nonce`` (remembered when not)."""
        nonces = self._by_call.setdefault(call, set())
        if nonce in nonces:
            return Seen.REPLAY
        if len(nonces) >= MAX_NONCES_PER_CALL:
            return Seen.FULL
        nonces.add(nonce)
        return Seen.NEW
