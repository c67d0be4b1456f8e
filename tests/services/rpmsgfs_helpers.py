"""Raw rpmsgfs requests against a server session (see conftest's ``session``)."""

from __future__ import annotations

from rpmsg.services.nuttx.rpmsgfs import FsSession
from rpmsg.wire.nuttx_rpmsgfs import FsResponse, decode_response


def ask(session: FsSession, raw: bytes) -> list[FsResponse]:
    """The server's answers to one raw request."""
    return [decode_response(r) for r in session.handle(raw)]
