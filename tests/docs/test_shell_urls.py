"""A URL with several options (``?a=1&b=2``) in a shell block of the docs is quoted.

Unquoted, the shell takes ``&`` as "run in the background": ``rpmsg nuttx
uart:/dev/ttyUSB0?baudrate=921600&crc=arc --fs ./share`` started ``rpmsg nuttx`` without
``crc=`` in the background and then ran ``crc=arc --fs ./share`` as a command. Skipped blocks
(those that need a board) are checked too: they are the ones a reader copies to hardware.
"""

from __future__ import annotations

import re
import shlex
from itertools import pairwise

import pytest
from doc_blocks import SHELL, Block, blocks, documents

_OPTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _shell_blocks() -> list[Block]:
    return [b for doc in documents() for b in blocks(doc) if b.lang in SHELL]


def _unquoted_option_after_ampersand(line: str) -> bool:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote: not a single-line command
        return False
    return any(tok == "&" and nxt and _OPTION.match(nxt)
               for tok, nxt in pairwise([*tokens, ""]))


@pytest.mark.parametrize("block", _shell_blocks(), ids=lambda b: b.where)
def test_urls_with_options_are_quoted(block: Block) -> None:
    bad = [line for line in block.code.splitlines() if _unquoted_option_after_ampersand(line)]
    assert not bad, f"{block.where}: quote the URL, '&' ends the command here: {bad}"


def test_the_check_sees_an_unquoted_url() -> None:
    assert _unquoted_option_after_ampersand("rpmsg nuttx uart:/dev/ttyUSB0?baudrate=1&crc=arc")
    assert not _unquoted_option_after_ampersand('rpmsg nuttx "uart:/dev/x?baudrate=1&crc=arc"')
    assert not _unquoted_option_after_ampersand("python -m sim uart:pty > chip.txt &")
