"""Finding and calling the actors of an application, from any process.

Calls are retried while an actor restarts or a partition changes writer; commands always carry
a command id (one is assigned if the caller gave none), so a retried command applies once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import ray

from ...model.errors import ConfigurationError, Unavailable
from .errors import RETRYABLE, unwrap
from .handles import ActorHandle
from .spec import AppSpec

log = logging.getLogger("talix.ray")
T = TypeVar("T")

class _Queue:
    """The calls waiting for a shard's next batch."""

    __slots__ = ("flusher", "items", "slots")

    def __init__(self, max_in_flight: int) -> None:
        self.items: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]] = []
        self.flusher: asyncio.Future[None] | None = None
        self.slots = asyncio.Semaphore(max_in_flight)


class Router:
    """Actor handles by name, cached; calls with retries across restarts.

    ``entity_actor`` is the actor class of dedicated aggregates (the router creates them on
    demand); a router without one serves only sharded stores."""

    def __init__(self, spec: AppSpec, deadline: float = 60.0, *, max_batch: int = 512,
                 max_in_flight: int = 4, entity_actor: Any = None) -> None:
        self.spec = spec
        self._entity_actor = entity_actor
        self.deadline = deadline
        self._handles: dict[str, ActorHandle] = {}
        self._queues: dict[int, _Queue] = {}
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._sending: set[asyncio.Task[None]] = set()

    def handle(self, name: str) -> ActorHandle:
        """A named actor of the application (``ValueError`` if it does not exist)."""
        h = self._handles.get(name)
        if h is None:
            try:
                h = ray.get_actor(name, namespace=self.spec.namespace)
            except ValueError:
                raise Unavailable(f"actor {name} is not running") from None
            self._handles[name] = h
        return h

    def shard(self, partition: int) -> ActorHandle:
        """The shard actor writing ``partition``."""
        return self.handle(self.spec.shard_name(self.spec.shard_of(partition)))

    def entity(self, store: str, aggregate_id: str) -> ActorHandle:
        """The dedicated actor of one aggregate, created on demand."""
        name = self.spec.entity_name(store, aggregate_id)
        h = self._handles.get(name)
        if h is None:
            if self._entity_actor is None:
                raise ConfigurationError(f"this router does not create dedicated aggregate "
                                         f"actors ({store!r} is a dedicated store)")
            h = self._entity_actor.options(
                name=name, namespace=self.spec.namespace, get_if_exists=True,
                lifetime="detached", num_cpus=0, max_restarts=0,
                **self.spec.actor_options).remote(self.spec, store, aggregate_id)
            self._handles[name] = h
        return h

    async def call(self, what: str, target: Callable[[], ActorHandle],
                   method: Callable[[ActorHandle], Awaitable[T]],
                   forget: str | None = None) -> T:
        """``await method(target())`` retried on restarts, unavailability and fencing."""
        end = time.monotonic() + self.deadline
        delay = 0.05
        while True:
            try:
                return await method(target())
            except asyncio.CancelledError:
                raise
            except Exception as raw:
                exc = unwrap(raw)
                if not isinstance(exc, RETRYABLE):
                    if exc is raw:
                        raise
                    raise exc from None
                if forget is not None:
                    self._handles.pop(forget, None)
                if time.monotonic() + delay > end:
                    msg = f"{what}: unavailable for {self.deadline:.0f}s ({exc})"
                    raise Unavailable(msg) from None
                log.info("%s: %s; retrying in %.2fs", what, type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def batched(self, partition: int, method: str, *args: Any) -> Any:
        """``shard_call`` through the shard's batch: the calls made while one batch is in
        flight travel together in the next (one actor call for many commands, as group
        commit does for segments). A call that fails for a passing reason (the actor
        restarts, the partition changes writer) is retried alone, with :meth:`shard_call`."""
        shard = self.spec.shard_of(partition)
        queue = self._queues.get(shard)
        if queue is None:
            queue = self._queues[shard] = _Queue(self._max_in_flight)
        fut: asyncio.Future[tuple[bool, Any]] = asyncio.get_running_loop().create_future()
        queue.items.append((method, args, fut))
        if queue.flusher is None or queue.flusher.done():
            queue.flusher = asyncio.ensure_future(self._flush(shard, queue))
        ok, value = await fut
        if ok:
            return value
        if isinstance(value, RETRYABLE):
            return await self.shard_call(partition, method, *args)
        raise value

    async def _flush(self, shard: int, queue: _Queue) -> None:
        while queue.items:
            await asyncio.sleep(0)  # what is made ready in this turn joins the batch
            await queue.slots.acquire()
            batch = queue.items[:self._max_batch]
            del queue.items[:self._max_batch]
            task = asyncio.ensure_future(self._send(shard, queue, batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, shard: int, queue: _Queue,
                    batch: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        name = self.spec.shard_name(shard)
        try:
            outcomes = await self.handle(name).batch.remote([(m, a) for m, a, _ in batch])
        except Exception as raw:  # the whole call failed: each call decides for itself
            self._handles.pop(name, None)
            outcomes = [(False, unwrap(raw))] * len(batch)
        finally:
            queue.slots.release()
        for (_, _, fut), outcome in zip(batch, outcomes, strict=True):
            if not fut.done():
                fut.set_result(outcome)

    async def shard_call(self, partition: int, method: str, *args: Any) -> Any:
        """Call ``method`` on the shard of ``partition``."""
        name = self.spec.shard_name(self.spec.shard_of(partition))
        return await self.call(f"{name}.{method}", lambda: self.handle(name),
                               lambda h: getattr(h, method).remote(*args), forget=name)

    async def entity_call(self, store: str, aggregate_id: str, method: str, *args: Any) -> Any:
        """Call ``method`` on a dedicated aggregate's actor (re-created if it went idle)."""
        name = self.spec.entity_name(store, aggregate_id)
        return await self.call(f"{name}.{method}", lambda: self.entity(store, aggregate_id),
                               lambda h: getattr(h, method).remote(*args), forget=name)

