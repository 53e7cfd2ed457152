"""Running every view of an application inside one process (the LocalRuntime's way)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ..journal.base import Journal
from .fold import EventsFold, Fold, ProjectionFold
from .location import ViewLocation
from .runner import ViewRunner


def app_folds(app: Any, *, events_view: bool = True) -> list[Fold]:
    """The folds of an application: the built-in ``events`` view and each projection."""
    def decode(record: Any) -> Any:
        return app.store(record.store).decode(record)

    folds: list[Fold] = [EventsFold()] if events_view else []
    folds += [ProjectionFold(p, decode) for p in app.projections.values()]
    return folds


class ViewHost:
    """One :class:`ViewRunner` task per view."""

    def __init__(self, folds: list[Fold], journal: Journal, location: ViewLocation,
                 **runner_options: Any) -> None:
        self.location = location
        self.runners = {f.name: ViewRunner(f, journal, location, **runner_options)
                        for f in folds}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start following the log."""
        for runner in self.runners.values():
            self._tasks.append(asyncio.create_task(runner.run(), name=f"view:{runner.name}"))

    async def stop(self) -> None:
        """Stop the runners (a commit in progress completes first)."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        self._tasks.clear()
        for runner in self.runners.values():
            runner.close()

    async def status(self) -> list[dict[str, Any]]:
        """Each view's status, offsets and lag (in segments)."""
        return [await runner.stats() for runner in self.runners.values()]
