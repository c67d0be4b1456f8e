"""Sphinx configuration of the rpmsg documentation site (built by scripts/test with -W)."""

from __future__ import annotations

import rpmsg

project = "rpmsg"
author = "the rpmsg authors"
copyright = "2026, the rpmsg authors"
release = version = rpmsg.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown"}
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
exclude_patterns = ["_build"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "furo"
html_title = f"rpmsg {release}"
