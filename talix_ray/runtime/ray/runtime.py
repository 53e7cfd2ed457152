"""The RayRuntime: the LocalRuntime's semantics with aggregates in named Ray actors and
event-triggered actions as Ray tasks."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any

import ray
from ray import cloudpickle

from ...engine.runtime import Aggregate, Runtime
from ...journal import ObjectStoreJournal, WriterPolicy
from ...model.errors import ConfigurationError, Unavailable
from ...model.store import Command, CommandResult, EventStore
from ...settings import Settings
from ...shared import ObjectStoreFileStorage
from ..ray.spec import AppSpec, actor_class
from .local import init_local_ray, joins_a_cluster

if TYPE_CHECKING:
    from ...objectstore import ObjectStore
    from .handles import ActorHandle

log = logging.getLogger("talix.ray")
_clients: dict[tuple[str, str, str], RayRuntime] = {}


class RayRuntime(Runtime):
    """Runs services on a Ray cluster.

    * sharded stores (default): a named async actor per shard, ``talix:{app}:shard:{i}``,
      writes its partitions and hosts their active aggregates;
    * dedicated stores (``EventStore(..., placement="dedicated")``): an actor per aggregate,
      ``talix:{app}:{store}:{id}``, created on demand and stopped when idle;
    * event-, queue- and timer-triggered actions run as Ray tasks with their resources,
      started by ``talix:{app}:dispatcher``.

    Events live in ``store`` (``s3://bucket/prefix`` or ``file:///shared/path``: every process
    must reach it). ``shards`` defaults to the number of partitions, at most 4.

    Views: a named actor per view, ``talix:{app}:view:{name}`` (the built-in ``events`` view
    and each projection), writes ``views/{name}/`` of the store; ``views=False`` runs none.

    Starting creates the application's actors or joins them if they run (same ``app``,
    ``namespace`` and store). Stopping flushes and kills them — unless ``keep_actors=True``,
    which is what a second driver or a Serve replica that only joins them should pass.

    When Ray is not initialized and neither ``ray_init`` nor ``RAY_ADDRESS`` names a cluster to
    join, the runtime starts a new local instance bound to 127.0.0.1 with token
    authentication, the token in ``{settings.data_dir}/ray/auth_token`` (see
    :mod:`talix_ray.runtime.ray.local`).
    """

    def __init__(self, store: str | None = None, *, app: str = "talix",
                 namespace: str | None = None, partitions: int | None = None,
                 shards: int | None = None, settings: Settings | None = None,
                 snapshot_every: int | None = 500, max_active: int = 100_000,
                 idle_timeout: float = 60.0, actor_options: dict[str, Any] | None = None,
                 dispatch: bool = True, timers: bool = True, poll_interval: float = 1.0,
                 keep_actors: bool = False, ray_init: dict[str, Any] | None = None,
                 views: bool = True, view_options: dict[str, Any] | None = None,
                 executors: int = 2) -> None:
        super().__init__()
        s = settings or Settings()
        self.store_url = store or s.store
        if not self.store_url.startswith(("s3://", "file://")):
            raise ConfigurationError(
                f"the RayRuntime needs storage every process reaches (s3:// or file://), "
                f"not {self.store_url!r}")
        self.store_options = s.s3_options() if self.store_url.startswith("s3://") else {}
        self.app_name = app
        self.namespace = namespace or f"talix-{app}"
        self._partitions = partitions or s.partitions
        self._shards = shards
        self.snapshot_every = snapshot_every
        self.max_active = max_active
        self.idle_timeout = idle_timeout
        self.actor_options = dict(actor_options or {})
        self.dispatch = dispatch
        self.timers = timers
        self.poll_interval = poll_interval
        self.keep_actors = keep_actors
        self.ray_init = ray_init or {}
        self.views_enabled = views
        if not isinstance(executors, int) or not 1 <= executors <= 64:
            raise ConfigurationError("executors must be an integer between 1 and 64")
        self.executors = executors
        self.view_options = dict(view_options or {})
        self.policy: WriterPolicy = s.writer_policy()
        self.remember_commands = s.remember_commands
        self.spec: AppSpec | None = None
        self._journal: ObjectStoreJournal | None = None
        self._owner = True
        self.router: Any = None
        self.shard_info: list[dict[str, Any]] = []
        self._owns_ray = False
        self._ray_dir = s.data_dir / "ray"

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kw: Any) -> RayRuntime:
        """A runtime configured by ``TALIX_*`` settings."""
        s = settings or Settings()
        options: dict[str, Any] = {"app": s.app, "partitions": s.partitions,
                                   "snapshot_every": s.snapshot_every,
                                   "max_active": s.max_active,
                                   "view_options": s.view_options(), **kw}
        return cls(s.store, settings=s, **options)

    # -- client mode: a runtime inside actors, tasks and Serve replicas ------------------------
    @classmethod
    def client(cls, spec: AppSpec) -> RayRuntime:
        """A started runtime that uses the application's actors without owning them."""
        key = (spec.app, spec.namespace, spec.store_url)
        rt = _clients.get(key)
        if rt is None:
            from .router import Router

            observe_as(spec.app)

            rt = cls.__new__(cls)
            Runtime.__init__(rt)
            rt.__dict__.update(store_url=spec.store_url, store_options=spec.store_options,
                               app_name=spec.app, namespace=spec.namespace, spec=spec,
                               _owner=False, router=Router(spec), shard_info=[],
                               _journal=spec.journal([]), timers=False, dispatch=False)
            rt.app, rt.registry, middleware = spec.build()
            rt.middleware = list(middleware)
            rt._started = True
            _clients[key] = rt
        return rt

    @property
    def journal(self) -> ObjectStoreJournal:
        if self._journal is None:
            raise ConfigurationError("the runtime is not started")
        return self._journal

    def _object_store(self) -> ObjectStore:
        return self._open_store()

    # -- life cycle ---------------------------------------------------------------------------
    async def _start(self) -> None:
        from ...views.host import app_folds
        from .actors import DispatcherActor, ShardActor
        from .router import Router

        assert self.app is not None
        observe_as(self.app_name)  # this driver's (or Serve replica's) metrics and logs
        if not ray.is_initialized():
            if joins_a_cluster(self.ray_init):  # a cluster's own settings apply
                ray.init(namespace=self.namespace,
                         **{"include_dashboard": False, **self.ray_init})
            else:  # a local instance: loopback only, token authentication on
                init_local_ray(self._ray_dir, namespace=self.namespace, **self.ray_init)
            self._owns_ray = True
        journal = ObjectStoreJournal(self._open_store(), partitions=self._partitions, owned=[],
                                     policy=self.policy, poll_interval=self.poll_interval)
        await journal.open()
        self._journal = journal
        shards = min(self._shards or min(journal.partitions, 4), journal.partitions)
        user_regs = [(k, v) for k, v in self.registry.items().items()
                     if not isinstance(v, ObjectStoreFileStorage)]
        self.spec = AppSpec(
            app=self.app_name, namespace=self.namespace, store_url=self.store_url,
            store_options=self.store_options, partitions=journal.partitions, shards=shards,
            services=AppSpec.pack_services(self._services),
            registrations=cloudpickle.dumps(user_regs),
            middleware=cloudpickle.dumps(self.middleware),
            snapshot_every=self.snapshot_every, max_active=self.max_active,
            policy=self.policy, idle_timeout=self.idle_timeout,
            actor_options=self.actor_options, poll_interval=self.poll_interval,
            remember_commands=self.remember_commands, executors=self.executors,
            views=[f.name for f in app_folds(self.app)] if self.views_enabled else [])
        self.router = Router(self.spec)
        opts = self.spec.long_lived_options()
        handles = [actor_class(ShardActor).options(name=self.spec.shard_name(i), **opts)
                   .remote(self.spec, i) for i in range(shards)]
        self.shard_info = list(await asyncio.gather(*(h.ready.remote() for h in handles)))
        if self.dispatch and (self.app.has_log_consumers or self.app.timer_actions):
            dispatcher = actor_class(DispatcherActor).options(
                name=self.spec.dispatcher_name, **opts).remote(self.spec, self.timers)
            await dispatcher.start.remote()
        if self.views_enabled:
            await self._start_views(opts)

    async def _start_views(self, opts: dict[str, Any]) -> None:
        from ...views.catalog import ViewCatalog
        from ...views.location import ViewLocation
        from .views import ViewActor

        assert self.app is not None and self.spec is not None and self._journal is not None
        names = self.spec.views
        handles = [actor_class(ViewActor).options(name=self.spec.view_name(n), **opts)
                   .remote(self.spec, n, self.view_options) for n in names]
        await asyncio.gather(*(h.start.remote() for h in handles))
        location = ViewLocation.of_store(self._journal.store)
        assert location is not None
        self._views = ViewCatalog(location, names, self._journal, self._view_status)

    async def _view_status(self) -> list[dict[str, Any]]:
        assert self.spec is not None and self._views is not None
        out = []
        for name in self._views.names:
            try:
                h = ray.get_actor(self.spec.view_name(name), namespace=self.namespace)
                async with asyncio.timeout(30):
                    out.append(await h.status.remote())
            except Exception as exc:  # restarting, or gone
                out.append({"view": name, "status": "unavailable", "error": str(exc)})
        return out

    def _open_store(self) -> ObjectStore:
        from ...objectstore import open_store

        return open_store(self.store_url, **self.store_options)

    async def _stop(self) -> None:
        if not self._owner or self.spec is None:
            return
        spec = self.spec
        if not self.keep_actors:  # a runtime that joined running actors leaves them running
            for name in self._views.names if self._views is not None else []:
                await stop_actor(spec.view_name(name), self.namespace, "stop", 30)
            await stop_actor(spec.dispatcher_name, self.namespace, "stop", 30)
            for i in range(spec.shards):
                await stop_actor(spec.shard_name(i), self.namespace, "close", 60)
            kill_actors(spec)
        _clients.pop((spec.app, spec.namespace, spec.store_url), None)
        if self._journal is not None:
            await self._journal.close()
        if self._owns_ray:  # this runtime started the local Ray instance: stop it too
            ray.shutdown()
            self._owns_ray = False

    # -- commands and reads ---------------------------------------------------------------------
    async def _execute(self, command: Command[Any, Any], aggregate_id: str, input: Any,
                       command_id: str | None,
                       meta: dict[str, str] | None = None) -> CommandResult:
        # every routed command carries an id, so a retry after a crash applies it once
        cid = command_id or f"auto:{uuid.uuid4().hex}"
        store = command.store
        result: CommandResult  # what the actors' execute returns (the router calls by name)
        if store.placement == "dedicated":
            result = await self.router.entity_call(store.name, aggregate_id, "execute",
                                                   store.name, command.name, aggregate_id,
                                                   input, cid, meta)
        else:
            p = self.journal.partition_of(store.name, aggregate_id)
            result = await self.router.batched(p, "execute", store.name, command.name,
                                               aggregate_id, input, cid, meta)
        if command_id is None and result.command_id == cid:
            result = result._replace(command_id=None)
        return result

    async def _current(self, store: EventStore[Any], aggregate_id: str) -> Aggregate[Any]:
        found: Aggregate[Any]  # what the actors' get returns (the router calls by name)
        if store.placement == "dedicated":
            found = await self.router.entity_call(
                store.name, aggregate_id, "get", store.name, aggregate_id)
        else:
            p = self.journal.partition_of(store.name, aggregate_id)
            found = await self.router.batched(p, "get", store.name, aggregate_id)
        return found

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait until every action triggered by what was written so far has run.

        A dispatcher that is gone is created again (it resumes from its checkpoints); one
        that cannot finish in time raises :class:`TimeoutError` saying what is pending.
        """
        app = self._require_started()
        assert self.spec is not None
        if not (app.has_log_consumers or app.timer_actions):
            return
        await self.router.call("settle", self._dispatcher,
                               lambda h: h.settle.remote(timeout))

    def _dispatcher(self) -> ActorHandle:
        """The dispatcher actor, created again if it is missing."""
        from .actors import DispatcherActor

        assert self.spec is not None
        try:
            return ray.get_actor(self.spec.dispatcher_name, namespace=self.namespace)
        except ValueError:
            if not self.dispatch:
                raise Unavailable("no dispatcher runs for this application and this runtime "
                                  "does not start one (dispatch=False)") from None
            log.warning("the dispatcher of %s is gone: starting it again", self.app_name)
            return actor_class(DispatcherActor).options(name=self.spec.dispatcher_name,
                                           **self.spec.long_lived_options()
                                           ).remote(self.spec, self.timers)

    async def stats(self) -> dict[str, Any]:
        """Per-shard counters (active aggregates, writer heads) and the dispatcher's."""
        assert self.spec is not None
        shards = [await self.router.shard_call(p, "stats")
                  for p in range(self.spec.shards)]
        return {"active": sum(s["active"] for s in shards), "shards": shards}

    async def passivate_all(self) -> int:
        """Drop every idle aggregate of every shard from memory."""
        assert self.spec is not None
        return sum([await self.router.shard_call(p, "passivate_all")
                    for p in range(self.spec.shards)])


def observe_as(app: str) -> None:
    """Label this process's metrics and log records with ``app``; JSON logs if asked."""
    from ...observability import logs, metrics

    metrics.set_app(app)
    logs.set_app(app)
    logs.configure()


async def stop_actor(name: str, namespace: str, method: str, timeout: float) -> bool:
    """Ask the named actor to stop (``await actor.<method>()``) within ``timeout`` seconds.

    An actor that is not running is skipped; one that fails or does not answer in time is
    logged as a warning (the caller kills it next). Whether it stopped as asked."""
    try:
        actor = ray.get_actor(name, namespace=namespace)
    except ValueError:  # no such actor: never started, or gone already
        log.debug("actor %s is not running: nothing to stop", name)
        return False
    try:
        async with asyncio.timeout(timeout):
            await getattr(actor, method).remote()
    except TimeoutError:
        log.warning("actor %s did not %s within %ss; it is killed", name, method, timeout)
        return False
    except Exception as exc:  # its own failure, or it died: it is killed next either way
        log.warning("actor %s failed to %s (%s: %s); it is killed", name, method,
                    type(exc).__name__, exc)
        return False
    return True


def kill_actors(spec: AppSpec) -> int:
    """Kill every actor of the application (shards, dispatcher, dedicated aggregates)."""
    prefix = f"talix:{spec.app}:"
    n = 0
    for entry in ray.util.list_named_actors(all_namespaces=True):
        name = entry["name"] if isinstance(entry, dict) else entry
        ns = entry.get("namespace") if isinstance(entry, dict) else spec.namespace
        if ns == spec.namespace and name.startswith(prefix):
            try:
                ray.kill(ray.get_actor(name, namespace=ns), no_restart=True)
            except ValueError:  # it ended between the listing and the lookup
                log.debug("actor %s ended before it was killed", name)
                continue
            n += 1
    return n


__all__ = ["RayRuntime", "kill_actors", "stop_actor"]
