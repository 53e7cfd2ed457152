"""Waiting on a condition with a deadline, instead of sleeping and hoping."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(condition: Callable[[], T | Awaitable[T]], *, timeout: float,
                     what: str, pause: float = 0.01) -> T:
    """Poll ``condition`` (a function, sync or async) until it returns a truthy value, which
    is returned; an ``AssertionError`` naming ``what`` (and the last value) after ``timeout``
    seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what} (last: {value!r})")
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.2)
