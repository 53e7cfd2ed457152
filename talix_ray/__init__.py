"""talix-ray: event sourcing + CQRS services on Ray.

Write event types, reducers, commands, actions and projections; run them with the
:class:`LocalRuntime` (one process) or the RayRuntime (a Ray cluster).
"""

from typing import TYPE_CHECKING

from .engine import Aggregate, Invocation, LocalRuntime, Page, Runtime
from .engine.steps import NonDeterministicAction
from .model import (
    Action,
    AlreadyExists,
    Command,
    CommandContext,
    CommandResult,
    ConfigurationError,
    Conflict,
    Context,
    CorruptObject,
    DomainError,
    Event,
    EventStore,
    EventType,
    Forbidden,
    NewEvent,
    NotFound,
    Principal,
    Projection,
    Query,
    Resources,
    Retry,
    Service,
    StorageError,
    TalixError,
    TimerTick,
    Unauthenticated,
    Unavailable,
    UnknownEventType,
    UploadedFile,
    ValidationError,
    VersionConflict,
    action,
    every,
    fact_view,
    http,
    on_event,
    on_queue,
    query,
    state_view,
)
from .settings import Settings
from .shared import (
    Clock,
    DownloadedFile,
    Downloader,
    FileStorage,
    FixedClock,
    IdGenerator,
    MemoryFileStorage,
    SequentialIds,
)
from .testkit import Testkit

if TYPE_CHECKING:  # for the type checker; imported on use below (Ray is an optional extra)
    from .runtime.ray import RayRuntime

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    if name == "RayRuntime":  # imported on use: Ray is an optional extra
        from .runtime.ray import RayRuntime

        return RayRuntime
    raise AttributeError(f"module 'talix_ray' has no attribute {name!r}")

__all__ = [
    "Action", "Aggregate", "AlreadyExists", "Clock", "Command", "CommandContext",
    "CommandResult", "ConfigurationError", "Conflict", "Context", "CorruptObject",
    "DomainError", "DownloadedFile", "Downloader", "Event", "EventStore", "EventType",
    "FileStorage", "FixedClock", "Forbidden", "IdGenerator", "Invocation", "LocalRuntime",
    "MemoryFileStorage", "NewEvent", "NonDeterministicAction", "NotFound", "Page", "Principal",
    "Projection", "Query",
    "RayRuntime", "Resources", "Retry", "Runtime", "SequentialIds", "Service", "Settings",
    "StorageError",
    "TalixError", "Testkit", "TimerTick", "Unauthenticated", "Unavailable", "UnknownEventType",
    "UploadedFile", "ValidationError", "VersionConflict", "action", "every", "fact_view",
    "http", "on_event", "on_queue", "query", "state_view",
]
