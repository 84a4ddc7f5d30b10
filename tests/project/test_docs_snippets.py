"""Every Python snippet in the README and docs/ runs as written, imports included."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from docsnippets import python_blocks, stale_excerpts, write_project

ROOT = Path(__file__).resolve().parents[2]
PAGES = [
    page
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    if python_blocks(page)
]
PYTEST = Path(sys.executable).with_name("pytest")


def test_the_pages_have_snippets_to_run() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"README.md", "docs/tutorial-first-ivr.md", "docs/tutorial-testing.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_snippets_of_a_page_run(page: Path, tmp_path: Path) -> None:
    assert stale_excerpts(page, ROOT) == []
    written = write_project(page, tmp_path, ROOT / "flows")
    if not written:
        return  # only excerpts, checked above and run with their files' tests
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PLIVO_AUTH_TOKEN")}
    result = subprocess.run(
        [str(PYTEST), "-q", "-p", "no:cacheprovider", "-W", "error", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # 5: nothing to collect (a page without tests), after its modules imported cleanly
    assert result.returncode in (0, 5), f"{page}:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
