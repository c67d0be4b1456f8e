"""Transport strings: ``scheme:path?key=value&key=value``, parsed and read with typed getters.

Each transport reads its options through the getters while it is configured (no I/O yet), then
:meth:`TransportURL.finish` rejects any option nobody asked for, so a typo (``?timout=1``) is an
error before any connection is tried, as pyserial does with unknown keywords. An option given
twice (``num=1&num=2``) is an error too: which one wins would be a guess.
"""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import parse_qsl

from rpmsg import checks
from rpmsg.errors import ArgumentTypeError, InvalidArgumentError, InvalidURLError, RpmsgError

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_NO_LIMIT = {"none", "inf", "forever"}
SIDES = ("host", "remote")


def _shadow_checked(getter: Callable[Concatenate[TransportURL, str, P], R]
                    ) -> Callable[Concatenate[TransportURL, str, P], R]:
    """A typed getter that first reads the query's own value of an option a keyword
    replaced, with the same rules, so ``shm:x?timeout=nan`` is refused even with
    ``timeout=1`` given as a keyword."""

    def read(url: TransportURL, key: str, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if key in url.shadowed:
            query = TransportURL(url.text, url.scheme, url.path, {key: url.shadowed.pop(key)},
                                 url.side)
            getter(query, key, *args, **kwargs)
        return getter(url, key, *args, **kwargs)

    functools.update_wrapper(read, getter)  # the getter's name and docstring
    return read


@dataclass
class TransportURL:
    """A parsed transport string: ``scheme:path?key=value&key=value``.

    The query starts at the last ``?`` so that paths such as pyserial's ``socket://h:p``
    survive. Keyword arguments given to :func:`rpmsg.open` are merged over the query
    parameters (``-`` in a key reads as ``_``). Each transport reads its options through the
    typed getters, then :meth:`finish` rejects any option nobody used.
    """

    text: str
    scheme: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    #: Which end the caller wants to be when the URL leaves it open: ``host`` (virtio
    #: driver, the Linux side) or ``remote`` (virtio device, the co-processor side).
    #: Symmetric transports ignore it; an explicit ``role=`` option wins.
    side: str = "host"
    #: Query values a keyword argument replaced: still checked, by the same getter, when
    #: the option is read (a wrong URL stays wrong whatever overrides it).
    shadowed: dict[str, Any] = field(default_factory=dict)
    _used: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, text: str, overrides: Mapping[str, Any] | None = None,
              side: str = "host") -> TransportURL:
        if not isinstance(text, str):
            raise ArgumentTypeError(
                f"a transport URL is a str, not {type(text).__name__}")
        try:
            text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # no file, device or socket can be named by it
            raise InvalidURLError(f"transport {text!r} holds characters no encoding "
                                  "can write (a lone surrogate)") from None
        scheme, sep, rest = text.partition(":")
        if not sep or not scheme or not scheme.replace("-", "").replace("_", "").isalnum():
            raise InvalidURLError(
                f"transport {text!r} is not of the form SCHEME:PATH (e.g. 'loop:', "
                "'shm:/name', 'uart:/dev/ttyUSB0?baudrate=921600')")
        path, qsep, query = rest.rpartition("?") if "?" in rest else (rest, "", "")
        params: dict[str, Any] = {}
        if qsep:
            try:
                pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
            except ValueError:
                raise InvalidURLError(
                    f"{scheme}: options {query!r} are not of the form key=value&key=value"
                ) from None
            for key, value in pairs:
                key = key.replace("-", "_")
                if key in params:
                    raise InvalidURLError(f"{scheme}: option {key} given twice in {text!r}")
                params[key] = value
        shadowed: dict[str, Any] = {}
        for key, value in (overrides or {}).items():
            if value is not None:
                key = key.replace("-", "_")
                if key in params:
                    shadowed[key] = params[key]
                params[key] = value
        if side not in SIDES:
            raise InvalidArgumentError(f"side must be 'host' or 'remote', not {side!r}")
        return cls(text=text, scheme=scheme.lower(), path=path, params=params, side=side,
                   shadowed=shadowed)

    def has(self, key: str) -> bool:
        return key in self.params

    def _error(self, key: str, raw: object, what: str) -> InvalidURLError:
        return InvalidURLError(f"{self.scheme}: option {key}={raw!r} {what}")

    @_shadow_checked
    def get_str(self, key: str, default: str) -> str:
        self._used.add(key)
        value = self.params.get(key, default)
        return str(value)

    @_shadow_checked
    def get_int(self, key: str, default: int, *, minimum: int | None = None,
                maximum: int | None = None) -> int:
        self._used.add(key)
        raw = self.params.get(key, default)
        if isinstance(raw, (bool, float)):
            raise self._error(key, raw, "is not an integer")
        try:
            value = int(raw, 0) if isinstance(raw, str) else int(raw)
        except (TypeError, ValueError):
            raise self._error(key, raw, "is not an integer") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            low = "" if minimum is None else minimum
            high = "" if maximum is None else maximum
            raise self._error(key, value, f"is outside {low}..{high}")
        return value

    @_shadow_checked
    def get_float(self, key: str, default: float, *, minimum: float = 0.0,
                  maximum: float = math.inf) -> float:
        """A finite number in ``minimum..maximum`` (NaN and infinities are refused)."""
        self._used.add(key)
        raw = self.params.get(key, default)
        if isinstance(raw, bool):
            raise self._error(key, raw, "is not a number")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise self._error(key, raw, "is not a number") from None
        if not math.isfinite(value) or not minimum <= value <= maximum:
            raise self._error(key, raw, f"is outside {minimum}..{maximum}")
        return value

    @_shadow_checked
    def get_timeout(self, key: str, default: float | None) -> float | None:
        """Seconds to wait: a number >= 0, or ``none``/``inf`` for no limit (None)."""
        self._used.add(key)
        raw = self.params.get(key, default)
        if isinstance(raw, str):
            text = raw.strip().lower()
            if text in _NO_LIMIT:
                return None
            try:
                raw = float(text)
            except ValueError:
                raise self._error(key, raw, "is not a number of seconds") from None
        try:
            return checks.timeout(raw, f"{self.scheme}: option {key}")
        except RpmsgError as exc:
            raise InvalidURLError(str(exc)) from None

    @_shadow_checked
    def get_bool(self, key: str, default: bool) -> bool:
        self._used.add(key)
        raw = self.params.get(key, default)
        if isinstance(raw, bool):
            return raw
        text = str(raw).lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise self._error(key, raw, "is not a boolean (1/0, yes/no, on/off, true/false)")

    @_shadow_checked
    def get_choice(self, key: str, default: T, choices: Mapping[str, T]) -> T:
        self._used.add(key)
        raw = self.params.get(key)
        if raw is None:
            return default
        try:
            return choices[str(raw).lower()]
        except KeyError:
            raise self._error(key, raw, f"is not one of {', '.join(choices)}") from None

    def take(self, key: str) -> Any:
        """Mark an option as used and return its raw value (None if absent)."""
        self._used.add(key)
        return self.params.get(key)

    def finish(self) -> None:
        """Reject options that no getter asked for, suggesting the nearest known one."""
        unknown = sorted(set(self.params) - self._used)
        if not unknown:
            return
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, sorted(self._used), n=1)
            hints.append(f"{key} (did you mean {close[0]}?)" if close else key)
        raise InvalidURLError(
            f"{self.scheme}: unknown option(s) {', '.join(hints)} in {self.text!r}; "
            f"known: {', '.join(sorted(self._used))}")


__all__ = ["SIDES", "TransportURL"]
