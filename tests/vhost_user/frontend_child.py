"""A front-end process for the kill tests: boots like UML, binds the echo, echoes forever.

Usage: ``python frontend_child.py SOCKET`` (prints ``bound`` once the echo is bound).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from frontend import FakeFrontend


def main(path: str) -> None:
    with FakeFrontend(path, connect_timeout=30) as fe:
        host = fe.boot()
        addr = host.wait_service("rpmsg-raw", timeout=30)
        ept = host.create_endpoint("rpmsg-raw", dst=addr)
        print("bound", flush=True)
        i = 0
        while True:
            data = b"%d" % i
            ept.send(data, timeout=30)
            assert ept.recv(timeout=30) == data
            i += 1


if __name__ == "__main__":
    main(sys.argv[1])
