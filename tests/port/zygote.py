"""A pre-imported process that forks test peers on request, so restart cycles are cheap.

Usage: ``python zygote.py``; reads commands from stdin, one per line: ``SCRIPT ARG...`` forks
a child that runs SCRIPT as ``__main__`` with those arguments and answers its pid on stdout.
Children are reaped automatically (they are meant to be killed with SIGKILL by the test) and
exit by themselves once the zygote is gone. The zygote exits when stdin closes (the test
ended, or died), so nothing outlives the test. It has no threads, so forking is safe.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import traceback

# Pre-imported once here, so that every forked peer starts in milliseconds.
import rpmsg
import rpmsg.transports.spi
import rpmsg.transports.uart  # noqa: F401


def main() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    for line in sys.stdin:
        args = line.split()
        if not args:
            continue
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.setsid()  # a signal to the test's process group does not reach it
            sys.argv = args
            sys.stdin.close()
            code = 0
            try:
                runpy.run_path(args[0], run_name="__main__")
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        print(pid, flush=True)


if __name__ == "__main__":
    main()
