"""What user code may touch: the contexts handed to commands, actions and queries.

These are interfaces only; each runtime provides its own implementation, so a service never
knows which runtime runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

if TYPE_CHECKING:
    from ..views.catalog import ViewCatalog  # an optional extra: for the checker only
    from .events import Event
    from .principal import Principal
    from .store import Command, CommandResult, EventStore

T = TypeVar("T")
S = TypeVar("S")
In = TypeVar("In", bound=BaseModel)


@runtime_checkable
class ReadContext(Protocol):
    """Read-only access: shared services and the state of aggregates."""

    def get(self, service: type[T]) -> T:
        """The shared service registered for ``service`` (dependency injection)."""
        ...

    async def load(self, store: EventStore[S], aggregate_id: str) -> S | None:
        """The current state of another aggregate (read-only), ``None`` if it does not exist."""
        ...

    @property
    def views(self) -> ViewCatalog:
        """The runtime's views: ``ctx.views.open("expenses").sql(query, params={...})``."""
        ...


class CommandContext(ReadContext, Protocol):
    """Handed to deciders that ask for it: the target and read-only access, nothing else."""

    aggregate_id: str
    command_id: str | None


class Context(ReadContext, Protocol):
    """Handed to actions: run commands, enqueue messages, read, use shared services."""

    event: Event[Any] | None
    attempt: int
    principal: Principal | None

    async def run(
        self,
        command: Command[Any, In],
        aggregate_id: str,
        input: In | dict[str, Any],
        *,
        command_id: str | None = None,
    ) -> CommandResult: ...

    async def step(self, name: str, fn: Callable[..., Any], *args: Any,
                   result_type: Any = None, **kwargs: Any) -> Any:
        """Run a side effect once per invocation: its result is recorded and replayed."""
        ...

    async def enqueue(self, queue: str, message: BaseModel | dict[str, Any], *,
                      key: str | None = None) -> None: ...
