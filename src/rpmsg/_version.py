"""The package version, in one place: read by ``rpmsg.__version__`` and by the build
(``[tool.setuptools.dynamic]`` in ``pyproject.toml``)."""

__version__ = "0.1.0"
