"""Run the Python code blocks of a Markdown page as a small project of their own.

A page's ```` ```python ```` blocks become files in a fresh folder that starts as a copy of the
bundled ``flows/`` (the pages' examples use them) with ``callflow new``'s ``hello.py``:

* a block whose first line is a path comment (``# flows/hello.py``, ``# tests/test_x.py``) is
  that file;
* a block whose first line is ``# excerpt of PATH`` quotes that file of the repository: it
  must appear there line for line (indentation and blank lines aside), and it runs with the
  file's own tests;
* every other block is appended, in page order, to ``tests/test_page.py`` (so a page's later blocks
  may use what its earlier blocks imported or defined); a block with ``await`` or ``async
  with`` at its top level is a fragment of a flow and is appended as the body of an
  ``async def`` (compiled and its names bound, not run).

```` ```pyi ```` blocks are signatures, shown and not run. The folder is then tested with plain
``pytest``: importing ``test_page.py`` runs its top level (``@flow`` checks, annotations), and
its ``test_*`` functions run as tests.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

from callflow.scaffold import TEMPLATE

FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^```\s*$", re.M | re.S)
PATH_COMMENT = re.compile(r"^# ((?:[\w.-]+/)*[\w.-]+\.py)\b")
EXCERPT_COMMENT = re.compile(r"^# excerpt of ((?:[\w.-]+/)*[\w.-]+\.py)\n")


def python_blocks(page: Path) -> list[str]:
    """The ```` ```python ```` blocks of ``page``, in order."""
    return [m.group(2) for m in FENCE.finditer(page.read_text()) if m.group(1) == "python"]


def _is_fragment(block: str) -> bool:
    try:
        compile(block, "<block>", "exec")
    except SyntaxError as exc:
        return "outside" in str(exc) and ("await" in str(exc) or "async" in str(exc))
    return False


def write_project(page: Path, folder: Path, flows: Path) -> list[Path]:
    """Write ``page``'s blocks into ``folder`` (see the module doc); the files written."""
    shutil.copytree(flows, folder / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    for helper in ("hello.py", "common.py"):  # what `callflow new` writes (first tutorial)
        shutil.copy(TEMPLATE / "flows" / helper, folder / "flows" / helper)
    loose: list[str] = []
    written: list[Path] = []
    for number, block in enumerate(python_blocks(page), 1):
        match = PATH_COMMENT.match(block)
        if EXCERPT_COMMENT.match(block):
            continue
        if match:
            target = folder / match.group(1)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block)
            written.append(target)
        elif _is_fragment(block):
            body = textwrap.indent(block, "    ")
            loose.append(f"async def _fragment_{number}(call):  # type: ignore\n{body}")
        else:
            loose.append(block)
    if loose:
        # tests/ gets the prompts too: the pages' flows say Audio.folder(__file__, "prompts")
        shutil.copytree(folder / "flows" / "prompts", folder / "tests" / "prompts")
        target = folder / "tests" / "test_page.py"
        target.write_text("\n\n".join(loose))
        written.append(target)
    return written


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def stale_excerpts(page: Path, root: Path) -> list[str]:
    """The ``# excerpt of PATH`` blocks of ``page`` that do not appear in ``root / PATH``."""
    stale = []
    for block in python_blocks(page):
        match = EXCERPT_COMMENT.match(block)
        if not match:
            continue
        source = root / match.group(1)
        want = _lines(block[match.end() :])
        have = _lines(source.read_text()) if source.exists() else []
        if not any(have[i : i + len(want)] == want for i in range(len(have) - len(want) + 1)):
            stale.append(f"{match.group(1)}: {want[0]!r}…")
    return stale
