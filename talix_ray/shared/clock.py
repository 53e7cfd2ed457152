"""Time as a shared service, so tests can fix it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class Clock:
    """The current time. The default reads the system clock."""

    def now(self) -> datetime:
        """An aware UTC datetime."""
        return datetime.fromtimestamp(self.now_us() / 1_000_000, tz=UTC)

    def now_us(self) -> int:
        """Microseconds since the epoch."""
        return time.time_ns() // 1000


class SystemClock(Clock):
    """The system clock."""


class FixedClock(Clock):
    """A clock that stands still until moved: ``clock.advance(seconds=5)``."""

    def __init__(self, at: datetime | None = None) -> None:
        at = at or datetime(2025, 1, 1, tzinfo=UTC)
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._us = int(at.timestamp() * 1_000_000)

    def now_us(self) -> int:
        return self._us

    def advance(self, **delta: float) -> None:
        """Move the clock forward by ``timedelta(**delta)``."""
        self._us += int(timedelta(**delta).total_seconds() * 1_000_000)
