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
import ray.exceptions

from ...model.errors import Fenced, Unavailable
from .spec import AppSpec

log = logging.getLogger("talix.ray")
T = TypeVar("T")

RETRYABLE: tuple[type[BaseException], ...] = (
    ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError,
    ray.exceptions.ActorHandleNotFoundError, Fenced, Unavailable)


def unwrap(exc: BaseException) -> BaseException:
    """The user's exception inside a Ray task error (talix errors keep their type)."""
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException):
            return cause
    return exc


class Router:
    """Actor handles by name, cached; calls with retries across restarts."""

    def __init__(self, spec: AppSpec, deadline: float = 60.0) -> None:
        self.spec = spec
        self.deadline = deadline
        self._handles: dict[str, Any] = {}

    def handle(self, name: str) -> Any:
        """A named actor of the application (``ValueError`` if it does not exist)."""
        h = self._handles.get(name)
        if h is None:
            try:
                h = ray.get_actor(name, namespace=self.spec.namespace)
            except ValueError:
                raise Unavailable(f"actor {name} is not running") from None
            self._handles[name] = h
        return h

    def shard(self, partition: int) -> Any:
        """The shard actor writing ``partition``."""
        return self.handle(self.spec.shard_name(self.spec.shard_of(partition)))

    def entity(self, store: str, aggregate_id: str) -> Any:
        """The dedicated actor of one aggregate, created on demand."""
        from .actors import EntityActor

        name = self.spec.entity_name(store, aggregate_id)
        h = self._handles.get(name)
        if h is None:
            h = EntityActor.options(
                name=name, namespace=self.spec.namespace, get_if_exists=True,
                lifetime="detached", num_cpus=0, max_restarts=0,
                **self.spec.actor_options).remote(self.spec, store, aggregate_id)
            self._handles[name] = h
        return h

    async def call(self, what: str, target: Callable[[], Any],
                   method: Callable[[Any], Awaitable[T]], forget: str | None = None) -> T:
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

