"""Blocking calls into async code, for scripts and notebooks: one event loop, kept on a daemon
thread for the life of the process, runs them (no thread or loop made per call).

:func:`run_sync` is for short reads (listing a store). :func:`wait_sync` is for waits, and
refuses to run on a thread whose event loop is running: blocking there would hold up that
loop — and with it, maybe, the very work being waited for (a LocalRuntime's view runners run
on it) — until the timeout. There the async form is the one to await.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _BackgroundLoop:
    """The process's loop for blocking calls, started on first use (and again in a forked
    child, where the parent's thread does not exist)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def get(self) -> asyncio.AbstractEventLoop:
        """The running background loop."""
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="talix-blocking-calls",
                                 daemon=True).start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    def owns(self, loop: asyncio.AbstractEventLoop | None) -> bool:
        """Whether ``loop`` is the background loop."""
        return loop is not None and loop is self._loop


_BACKGROUND = _BackgroundLoop()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end on the background loop and return its result (or raise its
    error). From any thread; on one running an event loop, that loop waits meanwhile, so
    keep it to short reads (waits go through :func:`wait_sync`)."""
    if _BACKGROUND.owns(_running_loop()):
        coro.close()
        raise RuntimeError("run_sync was called from a coroutine on its own background loop, "
                           "which would wait for itself: await the coroutine instead")
    future = asyncio.run_coroutine_threadsafe(coro, _BACKGROUND.get())
    try:
        return future.result()
    except BaseException:  # KeyboardInterrupt too: stop the work left on the background loop
        future.cancel()
        raise


def wait_sync(coro: Coroutine[Any, Any, T], *, what: str, instead: str) -> T:
    """Block until ``coro`` (a wait with a timeout) ends, as :func:`run_sync`; a
    :class:`RuntimeError` naming ``instead`` (the async form to await) when called on a thread
    whose event loop is running. ``what`` names the blocking call in that message."""
    if _running_loop() is not None:
        coro.close()
        raise RuntimeError(f"{what} blocks, and was called on a thread running an event loop: "
                           f"it would hold that loop up (and whatever runs on it, such as a "
                           f"LocalRuntime's view runners) until it times out; use `{instead}` "
                           f"there")
    return run_sync(coro)
