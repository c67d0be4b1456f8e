"""Benchmarks of the transports, each measured next to the floor of its mechanism.

They live outside the layers they measure so that no library package imports them:
:mod:`rpmsg.bench.shm` (two processes over shared-memory virtio, with a C reference),
:mod:`rpmsg.bench.uart` (port framing, CRC and pty goodput), :mod:`rpmsg.bench.spi` (the
simulated SPI bus); :mod:`rpmsg.bench.report` holds what they share. Each module offers
``run(...) -> dict`` (JSON-serialisable figures, never pass/fail) and ``python -m`` entry points.
"""

#: ``rpmsg bench KIND`` -> the module that measures it.
KINDS = {
    "shm": "rpmsg.bench.shm",
    "uart": "rpmsg.bench.uart",
    "spi": "rpmsg.bench.spi",
    "capture": "rpmsg.bench.capture",
}
