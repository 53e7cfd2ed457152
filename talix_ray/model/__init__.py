"""The model: what users write. Imports nothing else of talix_ray."""

from .action import Action, Query, Resources, Retry, TimerTick, action, query
from .context import CommandContext, Context, ReadContext
from .errors import (
    AlreadyExists,
    ConfigurationError,
    Conflict,
    CorruptObject,
    DomainError,
    Fenced,
    Forbidden,
    NotFound,
    StorageError,
    TalixError,
    Unauthenticated,
    Unavailable,
    UnknownEventType,
    ValidationError,
    VersionConflict,
)
from .events import Event, EventType, NewEvent, StoredEvent
from .files import UploadedFile
from .names import check_aggregate_id, check_name
from .principal import Principal
from .projection import Projection, fact_view, state_view
from .service import Service
from .store import Command, CommandResult, EventStore
from .triggers import (
    EventTrigger,
    HttpTrigger,
    QueueTrigger,
    TimerTrigger,
    Trigger,
    every,
    http,
    on_event,
    on_queue,
)

__all__ = [
    "Action", "AlreadyExists", "Command", "CommandContext", "CommandResult",
    "ConfigurationError", "Conflict", "Context", "CorruptObject", "DomainError", "Event",
    "EventStore", "EventTrigger", "EventType", "Fenced", "Forbidden", "HttpTrigger", "NewEvent",
    "NotFound", "Principal", "Projection", "Query", "QueueTrigger", "ReadContext", "Resources",
    "Retry", "Service", "StorageError", "StoredEvent", "TalixError", "TimerTick",
    "TimerTrigger", "Trigger", "Unauthenticated", "Unavailable", "UnknownEventType",
    "UploadedFile", "ValidationError", "VersionConflict", "action", "check_aggregate_id",
    "check_name", "every", "fact_view", "http", "on_event", "on_queue", "query", "state_view",
]
