"""The RayRuntime: the LocalRuntime's semantics with aggregates in named Ray actors and
event-triggered actions as Ray tasks."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import ray
from ray import cloudpickle

from ...extras import views_wanted
from ...journal import ObjectStoreJournal, WriterPolicy, writer_policy
from ...model.errors import ConfigurationError, Unavailable
from ...objectstore import ObjectStore, open_store
from ...settings import Settings
from ...shared import ObjectStoreFileStorage
from .actors import EntityActor, ShardActor
from .client import RoutedRuntime, forget_client, observe_as
from .dispatcher import DispatcherActor
from .local import init_local_ray, joins_a_cluster
from .router import Router
from .spec import AppSpec, actor_class

if TYPE_CHECKING:
    from .handles import ActorHandle

log = logging.getLogger("talix.ray")


class RayRuntime(RoutedRuntime):
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
    and each projection), writes ``views/{name}/`` of the store; ``views=False`` runs none, the
    default runs them when the ``views`` extra is installed (it is required when the services
    declare projections).

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
                 views: bool | None = None, view_options: dict[str, Any] | None = None,
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
        self.policy: WriterPolicy = writer_policy(s)
        self.remember_commands = s.remember_commands
        self.spec: AppSpec | None = None
        self._journal: ObjectStoreJournal | None = None
        self.router: Router | None = None
        self._store: ObjectStore | None = None
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

    def _object_store(self) -> ObjectStore:
        """The application's object store (one connection: files, the log, the views)."""
        if self._store is None:
            self._store = open_store(self.store_url, **self.store_options)
        return self._store

    # -- life cycle ---------------------------------------------------------------------------
    async def _start(self) -> None:
        assert self.app is not None
        observe_as(self.app_name)  # this driver's (or Serve replica's) metrics and logs
        views = self._view_names()  # a missing views extra fails before Ray is started
        self._init_ray()
        # the store is shared with the files (registered at create()): closing the log on
        # stop must leave it open for them, and for a start again
        journal = ObjectStoreJournal(self._object_store(), partitions=self._partitions, owned=[],
                                     policy=self.policy, poll_interval=self.poll_interval,
                                     own_store=False)
        await journal.open()
        self._journal = journal
        spec = self.spec = self._app_spec(journal.partitions, views)
        self.router = Router(spec, entity_actor=actor_class(EntityActor))
        opts = spec.long_lived_options()
        handles = [actor_class(ShardActor).options(name=spec.shard_name(i), **opts)
                   .remote(spec, i) for i in range(spec.shards)]
        self.shard_info = list(await asyncio.gather(*(h.ready.remote() for h in handles)))
        if self.dispatch and (self.app.has_log_consumers or self.app.timer_actions):
            dispatcher = actor_class(DispatcherActor).options(
                name=spec.dispatcher_name, **opts).remote(spec, self.timers)
            await dispatcher.start.remote()
        if spec.views:
            await self._start_views(opts)

    def _init_ray(self) -> None:
        """Join the Ray that runs, the cluster ``ray_init``/``RAY_ADDRESS`` names, or start a
        local instance (loopback only, token authentication on)."""
        if ray.is_initialized():
            return
        if joins_a_cluster(self.ray_init):  # a cluster's own settings apply
            ray.init(namespace=self.namespace, **{"include_dashboard": False, **self.ray_init})
        else:
            init_local_ray(self._ray_dir, namespace=self.namespace, **self.ray_init)
        self._owns_ray = True

    def _app_spec(self, partitions: int, views: list[str]) -> AppSpec:
        """What every actor, task and replica of the application is built from."""
        user_regs = [(k, v) for k, v in self.registry.items().items()
                     if not isinstance(v, ObjectStoreFileStorage)]
        return AppSpec(
            app=self.app_name, namespace=self.namespace, store_url=self.store_url,
            store_options=self.store_options, partitions=partitions,
            shards=min(self._shards or min(partitions, 4), partitions),
            services=AppSpec.pack_services(self._services),
            registrations=cloudpickle.dumps(user_regs),
            middleware=cloudpickle.dumps(self.middleware),
            snapshot_every=self.snapshot_every, max_active=self.max_active,
            policy=self.policy, idle_timeout=self.idle_timeout,
            actor_options=self.actor_options, poll_interval=self.poll_interval,
            remember_commands=self.remember_commands, executors=self.executors,
            views=views)

    def _view_names(self) -> list[str]:
        """The views to run: none, or the built-in ``events`` view and each projection."""
        assert self.app is not None
        if not views_wanted(self.views_enabled, bool(self.app.projections)):
            return []
        from ...views.host import app_folds  # the views extra: imported only when used

        return [f.name for f in app_folds(self.app)]

    async def _start_views(self, opts: dict[str, Any]) -> None:
        from ...views.catalog import ViewCatalog  # the views extra: imported only when used
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

    async def _stop(self) -> None:
        if self.spec is None:
            return
        spec = self.spec
        if not self.keep_actors:  # a runtime that joined running actors leaves them running
            for name in self._views.names if self._views is not None else []:
                await stop_actor(spec.view_name(name), self.namespace, "stop", 30)
            await stop_actor(spec.dispatcher_name, self.namespace, "stop", 30)
            for i in range(spec.shards):
                await stop_actor(spec.shard_name(i), self.namespace, "close", 60)
            kill_actors(spec)
        forget_client(spec)
        if self._journal is not None:
            await self._journal.close()
        if self._owns_ray:  # this runtime started the local Ray instance: stop it too
            ray.shutdown()
            self._owns_ray = False

    def _dispatcher(self) -> ActorHandle:
        """The dispatcher actor, created again if it is missing."""
        try:
            return super()._dispatcher()
        except Unavailable:
            if not self.dispatch:
                raise Unavailable("no dispatcher runs for this application and this runtime "
                                  "does not start one (dispatch=False)") from None
        spec, _ = self._routing()
        log.warning("the dispatcher of %s is gone: starting it again", self.app_name)
        return actor_class(DispatcherActor).options(name=spec.dispatcher_name,
                                                    **spec.long_lived_options()
                                                    ).remote(spec, self.timers)


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
