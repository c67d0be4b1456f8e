"""Tests against the real Linux kernel, run as User-Mode Linux (see ``uml.py``)."""
