"""Middleware: code that wraps every command, action and query call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

Kind = Literal["command", "action", "query"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Invocation:
    """What is being called: kind, name, target aggregate, input, command id, trigger event."""

    kind: Kind
    name: str
    input: Any
    aggregate_id: str | None = None
    command_id: str | None = None
    event_id: str | None = None
    attempt: int = 1


Next = Callable[[], Awaitable[Any]]
Middleware = Callable[[Invocation, Next], Awaitable[Any]]


async def call_through(middleware: Sequence[Middleware], invocation: Invocation,
                       final: Callable[[], Awaitable[T]]) -> T:
    """Call ``final`` wrapped by ``middleware`` (the first registered is the outermost)."""
    if not middleware:
        return await final()

    def link(i: int) -> Next:
        if i == len(middleware):
            return final

        async def step() -> Any:
            return await middleware[i](invocation, link(i + 1))

        return step

    # a middleware returns what ``call_next()`` gave it: the wrapped call's result
    return cast(T, await link(0)())
