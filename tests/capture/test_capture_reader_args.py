"""CaptureReader's ``poll`` is checked: a wrong one is a typed error before anything is read.

Seen from outside the suite: ``CaptureReader(path, follow=True, poll=0)`` (or a negative or
NaN poll) spun at the end of the file, a core at 100 % for as long as it followed;
``poll=None`` or ``inf`` never looked at the file again after its end (the records written
later never came); ``poll="1"`` raised a TypeError from ``threading.Event.wait``, and a
finite poll beyond what a wait can last (``1e300``) an OverflowError at the end of the file.
"""

from __future__ import annotations

import io
import math

import pytest

from rpmsg.capture import CaptureReader
from rpmsg.errors import RpmsgError


@pytest.mark.parametrize("poll", [0, 0.0, -1, math.nan, math.inf, None, "1", True, 1e300])
def test_a_wrong_poll_is_a_typed_error(poll: object) -> None:
    with pytest.raises(RpmsgError, match="poll"):
        CaptureReader(io.BytesIO(b""), follow=True, poll=poll)  # type: ignore[arg-type]


def test_a_right_poll_is_kept() -> None:
    assert CaptureReader(io.BytesIO(b""), follow=True, poll=0.05).poll == 0.05
    assert CaptureReader(io.BytesIO(b""), poll=2).poll == 2
