"""Ray's actor classes and handles as talix-ray uses them: Ray types neither ``.options``
nor calls to an actor's methods, so these Protocols say what the code relies on."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol


class RemoteMethod(Protocol):
    """An actor method: ``.remote(*args)`` sends the call and returns a reference to await
    for the method's result (untyped: it crosses processes)."""

    def remote(self, *args: Any) -> Awaitable[Any]: ...


class ActorHandle(Protocol):
    """A handle to a running actor: its methods by name."""

    def __getattr__(self, method: str) -> RemoteMethod: ...


class ActorClass(Protocol):
    """A class decorated with ``@ray.remote``: ``.options(...)`` then ``.remote(*args)``
    starts an actor (or gets the named one) and returns its handle."""

    def options(self, **options: Any) -> ActorClass: ...

    def remote(self, *args: Any) -> ActorHandle: ...
