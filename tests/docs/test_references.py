"""Every API name a docs page links to ({class}`rpmsg.X`, {func}`...`) is documented in the API
reference, so the link leads somewhere.

Sphinx's ``-W`` build does not check these: an unresolved ``{class}`` role renders as plain
code without a warning unless the build is nitpicky. Until this test, every error class the
pages named (``rpmsg.RpmsgTimeoutError``...) and every NuttX service class was such a dead
link. Autodoc'd docstrings (``api.md`` and source files) are not checked here: their type
hints name private and standard-library classes no page documents.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
_UNRESOLVED = re.compile(r"^(?P<where>\S+?\.md):(?P<line>\d+): WARNING: (?P<what>.*"
                         r"reference target not found.*)$")


def test_page_references_resolve(tmp_path: Path) -> None:
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_parser")
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-n", "-q", "-b", "html", "-d",
         str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    dead = []
    for line in proc.stderr.splitlines():
        m = _UNRESOLVED.match(line.strip())
        if m and Path(m.group("where")).name != "api.md":
            dead.append(f"{Path(m.group('where')).relative_to(DOCS)}:{m.group('line')}: "
                        f"{m.group('what')}")
    assert not dead, "dead API links in the docs:\n" + "\n".join(dead)
