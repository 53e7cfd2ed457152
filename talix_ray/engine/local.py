"""The LocalRuntime: every part of an application in one asyncio process."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..extras import views_wanted
from ..journal import open_journal
from ..journal.base import Journal
from ..journal.memory import MemoryJournal
from ..model.errors import ConfigurationError
from ..model.store import Command, CommandResult, EventStore
from ..observability import logs, metrics
from ..settings import Settings
from ..shared import Clock
from .context import CommandCtx
from .dispatcher import Dispatcher
from .entities import Entity, EntityHost
from .runtime import Aggregate, Runtime

log = logging.getLogger("talix.local")


class LocalRuntime(Runtime):
    """Runs services in-process: entities in a host, actions as asyncio tasks.

    ``journal`` defaults to a :class:`MemoryJournal`. Use it for unit tests, notebooks and
    small jobs; it has exactly the semantics of the RayRuntime. One journal has one dispatcher:
    further runtimes on the same journal pass ``dispatch=False`` (a second copy would find
    its checkpoint taken and stop).

    Views (``talix_ray.views``) are kept up to date by a task per view: in ``views/`` of the
    journal's object store, or in a temporary directory when events live in memory and the
    services declare projections. ``views=False`` runs none; ``views="file:///path"`` or
    ``"s3://bucket/prefix"`` puts them in that store's ``views/``. ``view_options`` tune the
    runners (``batch_events``, ``linger``, ``poll_interval``, ``cache_rows``).
    """

    def __init__(self, journal: Journal | None = None, *, max_active: int = 100_000,
                 max_concurrency: int = 32, poll_interval: float = 1.0,
                 timers: bool = True, dispatch: bool = True,
                 snapshot_every: int | None = None, views: bool | str | Any = None,
                 view_options: dict[str, Any] | None = None,
                 remember_commands: int = 256) -> None:
        super().__init__()
        if max_active < 1:
            raise ConfigurationError("max_active must be >= 1")
        self._journal = journal if journal is not None else MemoryJournal()
        self._max_active = max_active
        self._remember_commands = remember_commands
        self._max_concurrency = max_concurrency
        self._poll_interval = poll_interval
        self._timers_enabled = timers
        self._dispatch_enabled = dispatch
        self._host: EntityHost | None = None
        self.snapshot_every = snapshot_every
        self._dispatcher: Dispatcher | None = None
        self._views_arg = views
        self._view_options = dict(view_options or {})
        self._view_host: Any = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kw: Any) -> LocalRuntime:
        """A runtime on the store the settings (``TALIX_*`` environment) name."""
        s = settings or Settings()
        kw.setdefault("view_options", s.view_options())
        kw.setdefault("remember_commands", s.remember_commands)
        metrics.set_app(s.app)  # the app label of this process's metrics and log records
        logs.set_app(s.app)
        rt = cls(open_journal(s), max_active=s.max_active, **kw)
        rt.snapshot_every = None if s.store == "memory://" else s.snapshot_every
        return rt

    @property
    def journal(self) -> Journal:
        return self._journal

    @property
    def host(self) -> EntityHost:
        """The entity host (for inspection: active count, passivation)."""
        if self._host is None:
            raise ConfigurationError("the runtime is not started")
        return self._host

    def _object_store(self) -> Any:
        return getattr(self._journal, "store", None)  # files live next to the events

    async def _start(self) -> None:
        assert self.app is not None
        await self._journal.open()
        clock = self.registry.get(Clock)
        self._host = EntityHost(self._journal, clock_us=clock.now_us,
                                context_factory=self._command_context,
                                max_active=self._max_active,
                                remember_commands=self._remember_commands,
                                snapshot_every=self.snapshot_every)
        await self._start_views()

    async def _start_consumers(self) -> None:
        assert self.app is not None
        if self._dispatch_enabled and self.app.has_log_consumers:
            self._dispatcher = Dispatcher(self._journal, self.app.route, self.execute_triggered,
                                          max_concurrency=self._max_concurrency,
                                          poll_interval=self._poll_interval)
            await self._dispatcher.start()
        if self._timers_enabled:
            for action in self.app.timer_actions.values():
                self._background.append(asyncio.create_task(self.timer_loop(action)))

    def _view_location(self) -> Any:
        arg = self._views_arg
        if arg is False:
            return None
        declared = bool(self.app and self.app.projections)
        if not views_wanted(None if arg is None else True, declared):
            return None  # no projections and no views extra: the core runs without views
        from ..views import ViewLocation  # the views extra: imported only when views run

        if isinstance(arg, ViewLocation):
            return arg
        if isinstance(arg, str):
            return ViewLocation.of_url(arg)
        if arg not in (None, True):
            raise ConfigurationError("views= takes True, False, a store URL or a ViewLocation")
        found = ViewLocation.of_store(getattr(self._journal, "store", None))
        if found is None and (arg is True or declared):
            found = ViewLocation.temporary()
        return found

    async def _start_views(self) -> None:
        location = self._view_location()
        if location is None:
            return
        from ..views.catalog import ViewCatalog
        from ..views.host import ViewHost, app_folds

        assert self.app is not None
        folds = app_folds(self.app)
        host = ViewHost(folds, self._journal, location,
                        **{"linger": self._poll_interval / 2, **self._view_options})
        await host.start()
        self._view_host = host
        self._views = ViewCatalog(location, [f.name for f in folds], self._journal, host.status)

    async def _stop(self) -> None:
        if self._view_host is not None:
            await self._view_host.stop()
            self._view_host = None
        if self._dispatcher is not None:
            await self._dispatcher.stop()
            self._dispatcher = None
        if self._host is not None:
            self._host.passivate_all()
            await self._host.drain()
        await self._journal.close()

    def _command_context(self, entity: Entity, command: Command[Any, Any],
                         command_id: str | None) -> CommandCtx:
        return CommandCtx(self, self.registry, entity.aggregate_id, command_id,
                          lambda: entity.state, entity.store)

    async def _execute(self, command: Command[Any, Any], aggregate_id: str, input: Any,
                       command_id: str | None,
                       meta: dict[str, str] | None = None) -> CommandResult:
        return await self.host.execute(command, aggregate_id, input, command_id, meta)

    async def _current(self, store: EventStore[Any], aggregate_id: str) -> Aggregate[Any]:
        entity = await self.host.get(store, aggregate_id)
        return Aggregate(store.name, aggregate_id, entity.state, entity.version,
                         entity.last_event)

    async def stats(self) -> dict[str, Any]:
        """Active aggregates and writer counters."""
        self._require_started()
        return {"active": self.host.active_count}

    async def passivate_all(self) -> int:
        """Drop every idle aggregate from memory (they reload on their next use)."""
        n = self.host.passivate_all()
        await self.host.drain()
        return n

    async def settle(self, timeout: float = 30.0) -> None:
        self._require_started()
        if self._dispatcher is not None:
            await self._dispatcher.settle(timeout)
