"""``python -m rpmsg`` runs the command-line tool."""

import sys

from rpmsg.cli.main import main

sys.exit(main())
