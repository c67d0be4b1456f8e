"""The ``rpmsg`` command-line tool: thin wrappers over the library."""
