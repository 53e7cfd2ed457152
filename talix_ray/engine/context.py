"""The contexts handed to user code, built on a small client interface."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from ..model.action import Action
from ..model.errors import ConfigurationError, NotFound
from ..model.events import Event
from ..model.names import check_name
from ..model.principal import Principal
from ..model.store import Command, CommandResult, EventStore

T = TypeVar("T")


class Client(Protocol):
    """What contexts need from a runtime: run commands, enqueue, read state."""

    async def run(self, command: Command[Any, Any], aggregate_id: str, input: Any, *,
                  command_id: str | None = None,
                  principal: Principal | None = None) -> CommandResult: ...

    async def enqueue(self, queue: str, message: Any, *, key: str | None = None,
                      message_id: str | None = None) -> None: ...

    async def load_state(self, store: EventStore[Any], aggregate_id: str) -> Any: ...


class Registry:
    """Shared services by type: ``register(FileStorage, impl)``, ``get(FileStorage)``."""

    def __init__(self) -> None:
        self._items: dict[type, Any] = {}

    def register(self, kind: type[T], impl: T) -> None:
        """Register ``impl`` as the ``kind`` service (it must be an instance of it)."""
        if not isinstance(kind, type):
            raise ConfigurationError(f"register() takes a type first, got {kind!r}")
        if not isinstance(impl, kind):
            raise ConfigurationError(f"{impl!r} is not an instance of {kind.__name__}")
        self._items[kind] = impl

    def get(self, kind: type[T]) -> T:
        """The service registered for ``kind`` (or for a subclass of it)."""
        found = self._items.get(kind)
        if found is not None:
            return found  # type: ignore[no-any-return]
        for registered, impl in self._items.items():
            if isinstance(registered, type) and issubclass(registered, kind):
                return impl  # type: ignore[no-any-return]
        raise NotFound(f"no shared service registered for {getattr(kind, '__name__', kind)}; "
                       f"call runtime.register({getattr(kind, '__name__', kind)}, impl)")

    def has(self, kind: type) -> bool:
        """Whether something is registered for ``kind``."""
        return kind in self._items

    def items(self) -> dict[type, Any]:
        """A copy of the registrations."""
        return dict(self._items)


class ReadOnlyContext:
    """Shared services and aggregate state — for queries and command deciders."""

    def __init__(self, client: Client, registry: Registry,
                 principal: Principal | None = None) -> None:
        self._client = client
        self._registry = registry
        self.principal = principal

    def get(self, service: type[T]) -> T:
        """The shared service registered for ``service``."""
        return self._registry.get(service)

    async def load(self, store: EventStore[Any], aggregate_id: str) -> Any:
        """The current state of an aggregate (``None`` when it does not exist)."""
        return await self._client.load_state(store, aggregate_id)


class CommandCtx(ReadOnlyContext):
    """The context of a decider: its target, read-only access."""

    def __init__(self, client: Client, registry: Registry, aggregate_id: str,
                 command_id: str | None, current: Callable[[], Any], store: EventStore[Any]):
        super().__init__(client, registry)
        self.aggregate_id = aggregate_id
        self.command_id = command_id
        self._current = current
        self._store = store

    async def load(self, store: EventStore[Any], aggregate_id: str) -> Any:
        if store is self._store and aggregate_id == self.aggregate_id:
            return self._current()
        return await super().load(store, aggregate_id)


class ActionContext(ReadOnlyContext):
    """The context of an action: run commands, enqueue messages, read, shared services.

    Commands issued here get deterministic ids when the action was triggered by an event
    (``action:event-id:n``) or by an HTTP request with an ``Idempotency-Key`` — so a retried
    action has its effects applied once. ``principal`` is the authenticated caller of an HTTP
    request (``None`` for event, queue and timer triggers); the events of the commands run
    here record it in their metadata.
    """

    def __init__(self, client: Client, registry: Registry, action: Action, *,
                 event: Event[Any] | None = None, attempt: int = 1,
                 id_base: str | None = None, principal: Principal | None = None) -> None:
        super().__init__(client, registry, principal)
        self.action = action
        self.event = event
        self.attempt = attempt
        self.results: list[CommandResult] = []  # what the commands run here appended
        self._id_base = id_base
        self._calls = 0

    def _next_id(self) -> str | None:
        self._calls += 1
        return f"{self._id_base}:{self._calls}" if self._id_base else None

    async def run(self, command: Command[Any, Any], aggregate_id: str,
                  input: BaseModel | dict[str, Any], *,
                  command_id: str | None = None) -> CommandResult:
        """Run a command; its id is derived from the trigger unless given."""
        auto = self._next_id()
        result = await self._client.run(command, aggregate_id, input,
                                        command_id=command_id or auto, principal=self.principal)
        self.results.append(result)
        return result

    async def enqueue(self, queue: str, message: BaseModel | dict[str, Any], *,
                      key: str | None = None) -> None:
        """Put a message on a durable queue (deduplicated like commands on retries)."""
        check_name("queue", queue)
        await self._client.enqueue(queue, message, key=key, message_id=self._next_id())
