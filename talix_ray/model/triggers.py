"""Triggers: what makes an action run (HTTP, events, queues, timers)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, TypeGuard, get_args

from .errors import ConfigurationError
from .events import EventType
from .names import check_name

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
_PATH = re.compile(r"^/[A-Za-z0-9_\-./{}]*$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def _is_method(method: str) -> TypeGuard[HttpMethod]:
    return method in get_args(HttpMethod)


@dataclass(frozen=True, slots=True)
class HttpTrigger:
    """Expose the action as ``method path`` on the generated HTTP API."""

    method: HttpMethod
    path: str


@dataclass(frozen=True, slots=True)
class EventTrigger:
    """Run the action for every event of these types (at least once, in order per aggregate)."""

    event_types: tuple[EventType[Any], ...]


@dataclass(frozen=True, slots=True)
class QueueTrigger:
    """Run the action for every message enqueued on ``queue``."""

    queue: str


@dataclass(frozen=True, slots=True)
class TimerTrigger:
    """Run the action once per ``interval``, cluster-wide."""

    interval: timedelta


Trigger = HttpTrigger | EventTrigger | QueueTrigger | TimerTrigger


class _Http:
    """``http("POST", "/path")`` or ``http.post("/path")``."""

    def __call__(self, method: str, path: str) -> HttpTrigger:
        m = method.upper()
        if not _is_method(m):
            raise ConfigurationError(f"unsupported HTTP method {method!r}")
        if not isinstance(path, str) or not _PATH.match(path):
            raise ConfigurationError(f"invalid HTTP path {path!r}: must start with '/'")
        return HttpTrigger(m, path)

    def get(self, path: str) -> HttpTrigger:
        """A GET route."""
        return self("GET", path)

    def post(self, path: str) -> HttpTrigger:
        """A POST route."""
        return self("POST", path)

    def put(self, path: str) -> HttpTrigger:
        """A PUT route."""
        return self("PUT", path)

    def patch(self, path: str) -> HttpTrigger:
        """A PATCH route."""
        return self("PATCH", path)

    def delete(self, path: str) -> HttpTrigger:
        """A DELETE route."""
        return self("DELETE", path)


http = _Http()


def on_event(*event_types: EventType[Any]) -> EventTrigger:
    """Trigger on events of the given types."""
    if not event_types:
        raise ConfigurationError("on_event needs at least one event type")
    for et in event_types:
        if not isinstance(et, EventType):
            raise ConfigurationError(f"on_event takes EventType objects, got {et!r}")
    return EventTrigger(tuple(event_types))


def on_queue(name: str) -> QueueTrigger:
    """Trigger on messages of a durable queue."""
    return QueueTrigger(check_name("queue", name))


def parse_interval(interval: float | str | timedelta) -> timedelta:
    """``30``, ``"500ms"``, ``"5m"``, ``"1h"`` or a timedelta → a positive timedelta."""
    if isinstance(interval, timedelta):
        td = interval
    elif isinstance(interval, int | float) and not isinstance(interval, bool):
        td = timedelta(seconds=float(interval))
    elif isinstance(interval, str) and (m := _DURATION.match(interval)):
        value, unit = float(m.group(1)), m.group(2)
        scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
        td = timedelta(seconds=value * scale)
    else:
        raise ConfigurationError(f"invalid interval {interval!r}: use seconds, '5m', '1h', ...")
    if td.total_seconds() <= 0:
        raise ConfigurationError(f"interval must be positive, got {interval!r}")
    return td


def every(interval: float | str | timedelta) -> TimerTrigger:
    """Trigger once per interval (one firing per period across the cluster)."""
    return TimerTrigger(parse_interval(interval))
