"""Fixtures for the load-balancer tests: HAProxy (Debian's package, installed when missing)
in front of three ``callflow serve`` processes on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lbkit import HAProxy, Host

from tests.support.debian import require_binary


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[list[Host]]:
    """Three ``callflow serve`` processes serving tests/deploy/lbflows (killed at the end)."""
    started: list[Host] = []
    try:
        for i in range(1, 4):
            started.append(Host(f"host{i}", tmp_path))
        yield started
    finally:
        for host in started:
            host.kill()


@pytest.fixture
def haproxy(hosts: list[Host], tmp_path: Path) -> Iterator[HAProxy]:
    """HAProxy running deploy/haproxy.cfg in front of :func:`hosts`, every host UP."""
    binary = require_binary("haproxy", package="haproxy")
    lb = HAProxy(binary, hosts, tmp_path)
    try:
        yield lb
    finally:
        lb.stop()
