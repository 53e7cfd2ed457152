"""Runtimes that send commands and reads to an application's actors through a
:class:`~talix_ray.runtime.ray.router.Router`: the base of the RayRuntime (the driver that
starts the actors) and :class:`RayClient`, the runtime inside each actor, task and executor
of the application."""

from __future__ import annotations

import uuid
from typing import Any

import ray

from ...engine.runtime import Aggregate, Runtime
from ...journal import ObjectStoreJournal
from ...model.errors import ConfigurationError, Unavailable
from ...model.store import Command, CommandResult, EventStore
from ...objectstore import ObjectStore
from ...observability import logs, metrics
from .handles import ActorHandle
from .router import Router
from .spec import AppSpec


class RoutedRuntime(Runtime):
    """A runtime whose aggregates live in the application's actors: a command goes to the
    shard writing its partition (batched) or to its dedicated aggregate's actor."""

    spec: AppSpec | None = None
    router: Router | None = None
    _journal: ObjectStoreJournal | None = None

    @property
    def journal(self) -> ObjectStoreJournal:
        if self._journal is None:
            raise ConfigurationError("the runtime is not started")
        return self._journal

    def _routing(self) -> tuple[AppSpec, Router]:
        if self.spec is None or self.router is None:
            raise ConfigurationError("the runtime is not started")
        return self.spec, self.router

    async def _execute(self, command: Command[Any, Any], aggregate_id: str, input: Any,
                       command_id: str | None,
                       meta: dict[str, str] | None = None) -> CommandResult:
        _, router = self._routing()
        # every routed command carries an id, so a retry after a crash applies it once
        cid = command_id or f"auto:{uuid.uuid4().hex}"
        store = command.store
        if store.placement == "dedicated":
            result = await router.entity_call(store.name, aggregate_id, "execute",
                                              store.name, command.name, aggregate_id,
                                              input, cid, meta)
        else:
            p = self.journal.partition_of(store.name, aggregate_id)
            result = await router.batched(p, "execute", store.name, command.name,
                                          aggregate_id, input, cid, meta)
        if not isinstance(result, CommandResult):
            raise TypeError(f"an actor answered {type(result).__name__}, not a CommandResult")
        if command_id is None and result.command_id == cid:
            result = result._replace(command_id=None)
        return result

    async def _current(self, store: EventStore[Any], aggregate_id: str) -> Aggregate[Any]:
        _, router = self._routing()
        if store.placement == "dedicated":
            found = await router.entity_call(store.name, aggregate_id, "get", store.name,
                                             aggregate_id)
        else:
            p = self.journal.partition_of(store.name, aggregate_id)
            found = await router.batched(p, "get", store.name, aggregate_id)
        if not isinstance(found, Aggregate):
            raise TypeError(f"an actor answered {type(found).__name__}, not an Aggregate")
        return found

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait until every action triggered by what was written so far has run.

        A dispatcher that cannot finish in time raises :class:`TimeoutError` saying what is
        pending."""
        app = self._require_started()
        _, router = self._routing()
        if not (app.has_log_consumers or app.timer_actions):
            return
        await router.call("settle", self._dispatcher, lambda h: h.settle.remote(timeout))

    def _dispatcher(self) -> ActorHandle:
        """The dispatcher actor (:class:`Unavailable` when it does not run)."""
        spec, _ = self._routing()
        try:
            return ray.get_actor(spec.dispatcher_name, namespace=spec.namespace)
        except ValueError:
            raise Unavailable(f"the dispatcher of {spec.app} is not running") from None

    async def stats(self) -> dict[str, Any]:
        """Per-shard counters (active aggregates, writer heads)."""
        spec, router = self._routing()
        shards = [await router.shard_call(p, "stats") for p in range(spec.shards)]
        return {"active": sum(s["active"] for s in shards), "shards": shards}

    async def passivate_all(self) -> int:
        """Drop every idle aggregate of every shard from memory."""
        spec, router = self._routing()
        return sum([int(await router.shard_call(p, "passivate_all"))
                    for p in range(spec.shards)])


class RayClient(RoutedRuntime):
    """A started runtime that uses the application's running actors without owning them:
    what an actor, a task or an executor of the application runs actions against.

    It opens one connection to the object store, for the application's files and for the
    log it reads (it never writes the log: the shards do). ``entity_actor`` is the actor
    class of dedicated aggregates, created on demand."""

    def __init__(self, spec: AppSpec, *, entity_actor: Any) -> None:
        super().__init__()
        store: ObjectStore = spec.open_store()
        self.spec = spec
        self.router = Router(spec, entity_actor=entity_actor)
        self._journal = ObjectStoreJournal(store, partitions=spec.partitions, owned=[],
                                           policy=spec.policy, poll_interval=spec.poll_interval)
        self.app, self.registry, middleware = spec.build(store)
        self.middleware = list(middleware)
        self._started = True

    async def _start(self) -> None:  # started by construction
        return None

    async def _stop(self) -> None:  # the actors belong to the driver that started them
        return None


_clients: dict[tuple[str, str, str], RayClient] = {}


def client_for(spec: AppSpec, *, entity_actor: Any) -> RayClient:
    """This process's client of the application (one per application, namespace and store)."""
    key = (spec.app, spec.namespace, spec.store_url)
    client = _clients.get(key)
    if client is None:
        observe_as(spec.app)
        client = _clients[key] = RayClient(spec, entity_actor=entity_actor)
    return client


def forget_client(spec: AppSpec) -> None:
    """Drop this process's client of the application (its driver stopped it)."""
    _clients.pop((spec.app, spec.namespace, spec.store_url), None)


def observe_as(app: str) -> None:
    """Label this process's metrics and log records with ``app``; JSON logs if asked."""
    metrics.set_app(app)
    logs.set_app(app)
    logs.configure()


__all__ = ["RayClient", "RoutedRuntime", "client_for", "forget_client", "observe_as"]
