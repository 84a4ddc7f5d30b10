"""Debian packages that some end-to-end tests need (HAProxy, Chromium, espeak-ng, sox).

``require_binary("haproxy", package="haproxy")`` returns the program's path. When it is
missing and the tests run as root (as CI does), the package is installed with apt once per
test session; when it cannot be installed the test is skipped with the reason (not root, apt
refused, no network to Debian's mirror), never silently.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

import pytest

_APT_TIMEOUT_S = 900


@functools.cache
def _apt_updated() -> str | None:
    """Run ``apt-get update`` once; return an error text, or None on success."""
    try:
        done = subprocess.run(
            ["apt-get", "update", "-qq"],
            capture_output=True,
            text=True,
            timeout=_APT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"apt-get update failed: {exc}"
    if done.returncode != 0:
        return f"apt-get update exited {done.returncode}: {done.stderr.strip()[-300:]}"
    return None


@functools.cache
def _install(package: str) -> str | None:
    """apt-get install ``package``; return an error text, or None on success."""
    if shutil.which("apt-get") is None:
        return "apt-get is not on this machine"
    if os.geteuid() != 0:
        return "not root, so apt-get cannot install it"
    failed = _apt_updated()
    if failed:
        return failed
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
            capture_output=True,
            text=True,
            timeout=_APT_TIMEOUT_S,
            check=False,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"apt-get install {package} failed: {exc}"
    if done.returncode != 0:
        return f"apt-get install {package} exited {done.returncode}: {done.stderr.strip()[-300:]}"
    return None


def require_binary(binary: str, *, package: str) -> str:
    """The path of ``binary``, installing Debian's ``package`` first when it is missing.

    Raises:
        pytest.skip.Exception: the program is missing and could not be installed (the reason
            names why).
    """
    found = shutil.which(binary)
    if found:
        return found
    failed = _install(package)
    found = shutil.which(binary)
    if found:
        return found
    pytest.skip(f"{binary} (Debian package {package}) is missing: {failed or 'not on PATH'}")
