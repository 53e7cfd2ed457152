"""What ``talix views`` does, as plain functions (the CLI only prints)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..journal import open_journal
from ..journal.base import Journal
from ..model.errors import NotFound
from ..settings import Settings
from . import delta, names
from .fold import EVENTS_VIEW, EventsFold, Fold, ProjectionFold
from .location import ViewLocation
from .runner import ViewRunner
from .view import View


def read_journal(settings: Settings) -> Journal:
    """A read-only journal on the settings' store (it never writes the log)."""
    if settings.store == "memory://":
        raise NotFound("the store is memory:// (private to its process): set TALIX_STORE or "
                       "--store to a file:// or s3:// store")
    return open_journal(settings, read_only=True)


async def list_views(settings: Settings) -> list[dict[str, Any]]:
    """Each view in the store: version, rows, last commit and lag (segments behind the log)."""
    location = ViewLocation.of_settings(settings)
    journal = read_journal(settings)
    await journal.open()
    try:
        heads = {p: await journal.head(p) for p in range(journal.partitions)}
        out = []
        for name in names(settings):
            view = View(name, location)
            table = view.table()
            offsets = delta.offsets(table, name, journal.partitions)
            last = table.history(1)[0] if table.version() > 0 else {}
            out.append({"view": name, "version": table.version(), "rows": view.count(),
                        "description": table.metadata().description or "",
                        "last_commit_ms": last.get("timestamp"),
                        "lag": sum(max(0, h - offsets[p]) for p, h in heads.items())})
        return out
    finally:
        await journal.close()


def fold_of(app: Any, name: str) -> Fold:
    """The fold of view ``name`` in ``app`` (the built-in ``events`` view included)."""
    if name == EVENTS_VIEW:
        return EventsFold()
    projection = app.projections.get(name)
    if projection is None:
        known = ", ".join([EVENTS_VIEW, *app.projections])
        raise NotFound(f"no view {name!r} in the application (views: {known})")
    return ProjectionFold(projection, lambda r: app.store(r.store).decode(r))


async def rebuild(settings: Settings, app: Any, name: str,
                  progress: Callable[[int, int], None] | None = None) -> int:
    """Replay the log into a new version of view ``name``; returns that table version."""
    fold = fold_of(app, name)
    journal = read_journal(settings)
    await journal.open()
    runner = ViewRunner(fold, journal, ViewLocation.of_settings(settings))
    try:
        return await runner.rebuild(progress)
    finally:
        runner.close()
        await journal.close()
