"""Real SPI hardware for the RPMsg Port SPI backend: Linux ``spidev`` plus libgpiod v2 lines.

Both modules come with the ``spi`` extra (``pip install 'rpmsg[spi]'``) and are imported only
when a :class:`HardwarePhys` is opened.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from rpmsg.errors import InvalidURLError, NotAvailableError
from rpmsg.port.spi.phys import PhysEvents, SpiPhys
from rpmsg.port.spi.proto import Role
from rpmsg.wire.layout import Buffer


@dataclass(frozen=True)
class GpioSpec:
    """A GPIO line: chip device path, line offset and whether the line is active low."""

    chip: str
    offset: int
    active_low: bool = False

    @classmethod
    def parse(cls, text: str, what: str) -> GpioSpec:
        """``CHIP:OFFSET`` or ``CHIP:OFFSET:low``; CHIP is ``gpiochipN`` or a path."""
        parts = text.split(":")
        if len(parts) not in (2, 3) or not parts[0]:
            raise InvalidURLError(f"{what}={text!r} is not CHIP:OFFSET[:low] "
                                  "(e.g. gpiochip0:17 or /dev/gpiochip1:5:low)")
        try:
            offset = int(parts[1], 0)
        except ValueError:
            raise InvalidURLError(f"{what}={text!r}: line offset is not an integer") from None
        if offset < 0:
            raise InvalidURLError(f"{what}={text!r}: negative line offset")
        active_low = False
        if len(parts) == 3:
            if parts[2].lower() not in ("low", "high", "active-low", "active-high"):
                raise InvalidURLError(f"{what}={text!r}: active level must be low or high")
            active_low = "low" in parts[2].lower()
        chip = parts[0] if parts[0].startswith("/") else f"/dev/{parts[0]}"
        return cls(chip, offset, active_low)


def _import(name: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise NotAvailableError(
            f"the {name!r} module is needed for {extra} (pip install 'rpmsg[spi]'): {exc}"
        ) from None


class _GpioOutput:
    """One output line through libgpiod v2, starting inactive."""

    def __init__(self, spec: GpioSpec, consumer: str) -> None:
        gpiod = _import("gpiod", "GPIO request lines")
        from gpiod.line import Direction, Value

        self._value = Value
        self.offset = spec.offset
        settings = gpiod.LineSettings(direction=Direction.OUTPUT, active_low=spec.active_low,
                                      output_value=Value.INACTIVE)
        self._req = gpiod.request_lines(spec.chip, consumer=consumer,
                                        config={spec.offset: settings})

    def set(self, active: bool) -> None:
        self._req.set_value(self.offset, self._value.ACTIVE if active else self._value.INACTIVE)

    def close(self) -> None:
        self._req.release()


class _GpioInput:
    """One input line with edge detection on the inactive→active transition."""

    def __init__(self, spec: GpioSpec, consumer: str) -> None:
        gpiod = _import("gpiod", "GPIO request lines")
        from gpiod.line import Bias, Direction, Edge, Value

        self._value = Value
        self.offset = spec.offset
        # "Rising" edges are inactive-to-active ones, so active_low flips them (GPIO uAPI v2).
        settings = gpiod.LineSettings(direction=Direction.INPUT, edge_detection=Edge.RISING,
                                      bias=Bias.PULL_UP if spec.active_low else Bias.PULL_DOWN,
                                      active_low=spec.active_low)
        self._req = gpiod.request_lines(spec.chip, consumer=consumer,
                                        config={spec.offset: settings})

    def get(self) -> bool:
        return bool(self._req.get_value(self.offset) == self._value.ACTIVE)

    def wait_edges(self, timeout: float) -> int:
        """Number of active edges seen within ``timeout`` seconds (0 if none)."""
        if not self._req.wait_edge_events(timeout):
            return 0
        return len(self._req.read_edge_events())

    def close(self) -> None:
        self._req.release()


class HardwarePhys(SpiPhys):
    """Linux ``spidev`` for the transfer and libgpiod v2 for MREQ/SREQ.

    The master opens an ordinary spidev; the slave opens the spidev of a Linux SPI slave
    (target) controller, whose transfer blocks until the master clocks. The kernel gives no
    signal once the slave's buffer is armed, so SREQ is raised ``arm_delay`` seconds after
    the transfer was submitted (best effort; raise it on slow controllers).
    """

    def __init__(self, device: str, role: Role, buflen: int, *, mreq: GpioSpec,
                 sreq: GpioSpec, mode: int = 0, bits: int = 8, hz: int = 1_000_000,
                 arm_delay: float = 0.001) -> None:
        spidev = _import("spidev", "the spi: transport")
        if buflen % max(bits // 8, 1):
            raise InvalidURLError(f"buflen {buflen} is not a whole number of {bits}-bit words")
        self.role = role
        self.buflen = buflen
        self.device = device
        self.mode = mode
        self.bits = bits
        self.hz = hz
        self.arm_delay = arm_delay
        bus, dev = _spidev_numbers(device)
        self._spi = spidev.SpiDev()
        self._spi.open(bus, dev)
        try:
            self._spi.mode = mode
            self._spi.bits_per_word = bits
            self._spi.max_speed_hz = hz
            mine, theirs = (mreq, sreq) if role == "master" else (sreq, mreq)
            self._out = _GpioOutput(mine, f"rpmsg-spi-{role}")
            self._in = _GpioInput(theirs, f"rpmsg-spi-{role}")
        except BaseException:
            self._spi.close()
            raise
        self._events: PhysEvents | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self._slave_thread: threading.Thread | None = None
        self._stats = {"transfers": 0, "edges": 0}

    def describe(self) -> dict[str, Any]:
        return {"phys": "spidev", "device": self.device, "mode": self.mode, "bits": self.bits,
                "hz": self.hz}

    def stats(self) -> dict[str, int]:
        return dict(self._stats)

    def start(self, events: PhysEvents) -> None:
        self._events = events
        self._thread = threading.Thread(target=self._watch, name="rpmsg-spi-gpio", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        try:
            while not self._closed:
                n = self._in.wait_edges(0.2)
                for _ in range(n):
                    self._stats["edges"] += 1
                    if self._events is not None:
                        self._events.peer_edge()
        except Exception as exc:  # reported, never silent
            if not self._closed and self._events is not None:
                self._events.phys_error(exc)

    def set_request(self, active: bool) -> None:
        self._out.set(active)

    def peer_active(self) -> bool:
        return self._in.get()

    def transfer(self, tx: Buffer) -> bytes:
        rx = bytes(self._spi.xfer2(list(bytes(tx))))
        self._stats["transfers"] += 1
        return rx

    def queue_tx(self, tx: Buffer) -> None:
        data = list(bytes(tx))

        def worker() -> None:
            try:
                rx = bytes(self._spi.xfer2(data))
            except Exception as exc:
                if not self._closed and self._events is not None:
                    self._events.phys_error(exc)
                return
            self._stats["transfers"] += 1
            if self._events is not None and not self._closed:
                self._events.transfer_done(rx)

        self._slave_thread = threading.Thread(target=worker, name="rpmsg-spi-slave-xfer",
                                              daemon=True)
        self._slave_thread.start()
        time.sleep(self.arm_delay)

    def close(self, timeout: float = 1.0) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)  # its edge wait lasts 0.2 s at most
        for closer in (self._out.close, self._in.close, self._spi.close):
            try:
                closer()
            except Exception:
                pass


def _spidev_numbers(device: str) -> tuple[int, int]:
    """``/dev/spidevB.D`` → (B, D)."""
    name = device.rsplit("/", 1)[-1]
    if not name.startswith("spidev") or "." not in name:
        raise InvalidURLError(f"spi: device {device!r} is not of the form /dev/spidevB.D")
    bus, _, dev = name[len("spidev"):].partition(".")
    try:
        return int(bus), int(dev)
    except ValueError:
        raise InvalidURLError(f"spi: device {device!r} is not of the form /dev/spidevB.D") \
            from None


__all__ = ["GpioSpec", "HardwarePhys"]
