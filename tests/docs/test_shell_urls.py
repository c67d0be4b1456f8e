"""A URL with options (``scheme:path?a=1&b=2``) in a shell block of the docs is quoted.

Unquoted, the shell takes ``&`` as "run in the background": ``rpmsg nuttx
uart:/dev/ttyUSB0?baudrate=921600&crc=arc --fs ./share`` started ``rpmsg nuttx`` without
``crc=`` in the background and then ran ``crc=arc --fs ./share`` as a command. ``?`` is a
glob character: zsh stops at ``linux:?service=rpmsg-raw`` with "no matches found", and bash
replaces it by a file of the directory that happens to match. Skipped blocks (those that need
a board) are checked too: they are the ones a reader copies to hardware.
"""

from __future__ import annotations

import re
import shlex
from itertools import pairwise

import pytest
from doc_blocks import SHELL, Block, blocks, documents

_OPTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_URL = re.compile(r"^[a-z][a-z-]*:[^\s]*\?")


def _shell_blocks() -> list[Block]:
    return [b for doc in documents() for b in blocks(doc) if b.lang in SHELL]


def _unquoted_url(line: str) -> str | None:
    """The first URL with options the shell would split or glob on ``line``, if any."""
    lexer = shlex.shlex(line, posix=False, punctuation_chars=True)  # quotes kept
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote: not a single-line command
        return None
    for tok, nxt in pairwise([*tokens, ""]):
        if tok == "&" and _OPTION.match(nxt):
            return f"... & {nxt}"
        if _URL.match(tok):
            return tok
    return None


@pytest.mark.parametrize("block", _shell_blocks(), ids=lambda b: b.where)
def test_urls_with_options_are_quoted(block: Block) -> None:
    bad = [(line, url) for line in block.code.splitlines() if (url := _unquoted_url(line))]
    assert not bad, f"{block.where}: quote the URL ('&' ends a command, '?' globs): {bad}"


def test_the_check_sees_an_unquoted_url() -> None:
    assert _unquoted_url("rpmsg nuttx uart:/dev/ttyUSB0?baudrate=1&crc=arc --fs x")
    assert _unquoted_url("rpmsg send linux:?service=rpmsg-raw - 'one line'")
    assert _unquoted_url('rpmsg nuttx "uart:/dev/x?baudrate=1&crc=arc"') is None
    assert _unquoted_url("rpmsg send 'linux:?service=x' - hi") is None
    assert _unquoted_url("python -m sim uart:pty > chip.txt &") is None
    assert _unquoted_url("rpmsg ping shm:lab --count 5   # what?") is None
