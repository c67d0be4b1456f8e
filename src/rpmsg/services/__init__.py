"""Ready-made services that run on any Device: echo and NuttX's rpmsg-ping."""

from rpmsg.services.echo import EchoService
from rpmsg.services.ping import PingResult, PingService, ping

__all__ = ["EchoService", "PingResult", "PingService", "ping"]
