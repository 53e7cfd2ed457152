"""Views: projections of the log kept as Delta Lake tables under ``views/{name}/``.

Read them anywhere (a notebook, a script, a job)::

    from talix_ray import views

    expenses = views.open("expenses")          # the store from TALIX_STORE
    expenses.sql("select vendor, sum(amount) from expenses group by vendor").df()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..journal import open_journal
from ..model.errors import NotFound
from ..objectstore import open_store
from ..settings import Settings
from . import delta
from .blocking import run_sync
from .catalog import ViewCatalog
from .fold import EVENTS_VIEW, EventsFold, Fold, ProjectionError, ProjectionFold
from .location import ViewLocation
from .runner import ViewRunner, ViewSchemaChanged
from .schema import RowSchema, arrow_schema
from .view import JournalFactory, View, connect_views

if TYPE_CHECKING:
    import duckdb

    from ..journal.base import Journal


def _location(settings: Settings | None = None,
              location: ViewLocation | str | None = None) -> ViewLocation:
    if isinstance(location, ViewLocation):
        return location
    if isinstance(location, str):
        return ViewLocation.of_url(location)
    return ViewLocation.of_settings(settings)


def _journal_factory(settings: Settings | None) -> JournalFactory:
    def make() -> Journal:
        return open_journal(settings or Settings())
    return make


def open(name: str, settings: Settings | None = None, *,
         location: ViewLocation | str | None = None) -> View:
    """A view of the store the settings (``TALIX_*``) name, or of ``location`` (a store URL
    or a :class:`ViewLocation`). :class:`NotFound` if no runner has written it yet."""
    loc = _location(settings, location)
    view = View(name, loc, journal=_journal_factory(settings) if location is None else None)
    if not delta.exists(view.uri, loc.storage_options):
        raise NotFound(f"no view {name!r} at {loc.base} (is a runtime with that view running "
                       f"on this store?)")
    return view


def names(settings: Settings | None = None, *,
          location: ViewLocation | str | None = None) -> list[str]:
    """The views that have a table in the store."""
    loc = _location(settings, location)
    if loc.is_local:
        import os

        base = loc.base.removeprefix("file://")
        if not os.path.isdir(base):
            return []
        return sorted(n for n in os.listdir(base)
                      if os.path.isdir(os.path.join(base, n, "_delta_log")))
    s = settings or Settings()
    store = open_store(s.store, **s.store_options())
    listing = run_sync(store.list_all("views/", delimiter="/"))
    return sorted(p.removeprefix("views/").strip("/") for p in listing.prefixes)


def connect(settings: Settings | None = None, *,
            location: ViewLocation | str | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection where every view of the store is a table named after it."""
    loc = _location(settings, location)
    return connect_views(View(n, loc) for n in names(settings, location=loc))


def sql(query: str, settings: Settings | None = None, *,
        location: ViewLocation | str | None = None) -> duckdb.DuckDBPyRelation:
    """DuckDB SQL over every view of the store (joins welcome); a DuckDB relation."""
    return connect(settings, location=location).sql(query)


__all__ = ["EVENTS_VIEW", "EventsFold", "Fold", "ProjectionError", "ProjectionFold", "RowSchema",
           "View", "ViewCatalog", "ViewLocation", "ViewRunner", "ViewSchemaChanged",
           "arrow_schema", "connect", "connect_views", "names", "open", "sql"]
