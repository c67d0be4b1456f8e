"""Sphinx directive ``rpmsg-cli``: the command-line reference, generated from the parser.

The help of every ``rpmsg`` subcommand comes from :func:`rpmsg.cli.main.build_parser`, the
same parser the command uses, so the reference cannot drift from the program.
"""

from __future__ import annotations

import argparse
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


class RpmsgCli(SphinxDirective):
    """One section per subcommand: its one-line summary and its full ``--help``."""

    def run(self) -> list[nodes.Node]:
        from rpmsg.cli.main import build_parser

        parser = build_parser()
        out: list[nodes.Node] = []
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        helps = {c.dest: c.help or "" for c in sub._choices_actions}
        for name, cmd in sub.choices.items():
            section = nodes.section(ids=[f"rpmsg-{name}"])
            section += nodes.title(text=f"rpmsg {name}")
            if helps.get(name):
                section += nodes.paragraph(text=helps[name][:1].upper() + helps[name][1:] + ".")
            text = cmd.format_help()
            section += nodes.literal_block(text, text)
            out.append(section)
        return out


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("rpmsg-cli", RpmsgCli)
    return {"parallel_read_safe": True}
