"""Sphinx configuration of the rpmsg documentation site (built by scripts/test with -W)."""

from __future__ import annotations

import sys
from pathlib import Path

import rpmsg

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "rpmsg"
author = "the rpmsg authors"
copyright = "2026, the rpmsg authors"
release = version = rpmsg.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "rpmsg_cli",
]
source_suffix = {".md": "markdown"}
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
exclude_patterns = ["_build", "_ext"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "furo"
html_title = f"rpmsg {release}"
