"""Code blocks of the README and the docs, with the markers that say how to run them.

A fenced block is run by the test suite unless the HTML comment on the line above it says
otherwise (the comment is invisible in the rendered page):

* ``<!-- test: skip REASON -->``: shown, not run (needs hardware, the network, runs forever).
* ``<!-- test: background -->``: a shell block started in the background and stopped with
  Ctrl-C (SIGINT) once the document's other blocks ran, e.g. ``rpmsg remote shm:lab``.
* ``<!-- test: uml -->``: run inside the real Linux kernel (User-Mode Linux) against
  ``rpmsg remote vhost-user:... --echo rpmsg-raw --ping``, by ``tests/kernel/test_docs_uml.py``.

Python blocks run each in a fresh interpreter; shell blocks (``sh``, ``bash``, ``console``)
run with ``bash -e`` in one scratch directory per document, with the project's ``.venv/bin``
first on ``PATH``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELL = {"sh", "bash", "shell", "console"}
PYTHON = {"python", "py", "python3"}
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_MARKER = re.compile(
    r"^\s*<!--\s*test:\s*(?P<kind>skip|background|uml)\b\s*(?P<reason>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, its text and how to run it."""

    path: Path
    line: int
    lang: str
    code: str
    mode: str = "run"  # run, skip, background, uml
    reason: str = ""

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def runnable(self) -> bool:
        return self.lang in SHELL | PYTHON


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, in order, with their markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info = m.group("fence"), m.group("info").strip()
        lang = info.split()[0].strip("{}") if info else ""
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][len(m.group("indent")):])
            i += 1
        i += 1
        mode, reason = "run", ""
        if start > 0:
            marker = _MARKER.match(lines[start - 1])
            if marker:
                mode, reason = marker.group("kind"), marker.group("reason")
        out.append(Block(path, start + 1, lang, "\n".join(body) + "\n", mode, reason))
    return out


def documents() -> list[Path]:
    """The README and every page of the docs site."""
    docs = sorted((ROOT / "docs").rglob("*.md")) if (ROOT / "docs").is_dir() else []
    return [ROOT / "README.md", *docs]
