"""Event types, the event envelope and the stored (serialized) form of an event."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, NamedTuple, TypeVar

from pydantic import BaseModel

from .errors import ConfigurationError, UnknownEventType, ValidationError
from .validation import validate

P = TypeVar("P", bound=BaseModel)
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

_TYPE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.:\-]{0,127}$")


class EventType(Generic[P]):
    """A named, immutable kind of fact with a pydantic payload model.

    ``EventType("DOCUMENTS:DOCUMENT_CREATED", DocumentCreated)`` declares it; calling it,
    ``document_created(key="k", content_type="text/plain")``, validates a payload and gives
    the :class:`NewEvent` a command returns.

    Payloads evolve by versions: bump ``version`` and give an upcaster for every older
    version, ``upcasters={1: lambda p: {**p, "currency": "EUR"}}`` turning a version-1 payload
    into a version-2 one. Stored events are upcast when they are read.
    """

    def __init__(
        self,
        name: str,
        payload: type[P],
        *,
        metadata: type[BaseModel] | None = None,
        version: int = 1,
        upcasters: Mapping[int, Upcaster] | None = None,
        description: str | None = None,
    ) -> None:
        if not isinstance(name, str) or not _TYPE_NAME.match(name):
            raise ConfigurationError(
                f"invalid event type name {name!r}: 1-128 characters of letters, digits, "
                "'_', '.', ':' or '-'"
            )
        if not (isinstance(payload, type) and issubclass(payload, BaseModel)):
            raise ConfigurationError(f"event type {name}: payload must be a pydantic model class")
        if metadata is not None and not (
            isinstance(metadata, type) and issubclass(metadata, BaseModel)
        ):
            raise ConfigurationError(f"event type {name}: metadata must be a pydantic model class")
        if not isinstance(version, int) or version < 1:
            raise ConfigurationError(f"event type {name}: version must be an integer >= 1")
        upcasters = dict(upcasters or {})
        missing = [v for v in range(1, version) if v not in upcasters]
        if missing:
            raise ConfigurationError(
                f"event type {name} is at version {version} but has no upcaster from "
                f"version(s) {missing}"
            )
        extra = [v for v in upcasters if not 1 <= v < version]
        if extra:
            raise ConfigurationError(f"event type {name}: upcasters for unknown versions {extra}")
        self.name = name
        self.payload_model: type[P] = payload
        self.metadata_model = metadata
        self.version = version
        self.upcasters = upcasters
        self.description = description or (payload.__doc__ or "").strip() or None

    def __repr__(self) -> str:
        return f"EventType({self.name!r}, {self.payload_model.__name__}, version={self.version})"

    def __call__(self, _payload: P | Mapping[str, Any] | None = None, /,
                 **fields: Any) -> NewEvent[P]:
        """A new event of this type; the payload is validated now (fields or a model)."""
        metadata = fields.pop("_metadata", None)
        return NewEvent(self, self.validate_payload(_payload if _payload is not None else fields),
                        self.validate_metadata(metadata))

    def validate_payload(self, data: Any) -> P:
        """Validate a payload given as a model instance or a mapping."""
        return validate(self.payload_model, data, f"payload of event {self.name}")

    def validate_metadata(self, data: Any) -> BaseModel | dict[str, Any] | None:
        """Validate metadata against the metadata model when there is one."""
        if data is None:
            return None
        if self.metadata_model is None:
            if isinstance(data, BaseModel):
                return data.model_dump(mode="json")
            if not isinstance(data, Mapping):
                raise ValidationError(f"metadata of event {self.name} must be a mapping")
            return dict(data)
        return validate(self.metadata_model, data, f"metadata of event {self.name}")

    def upcast(self, payload: dict[str, Any], from_version: int, where: str) -> dict[str, Any]:
        """Bring a stored payload of an older schema version up to the current one."""
        if from_version == self.version:
            return payload
        if not 1 <= from_version < self.version:
            raise UnknownEventType(
                f"{where}: event {self.name} has schema version {from_version}, "
                f"this code knows versions 1..{self.version}"
            )
        for v in range(from_version, self.version):
            payload = self.upcasters[v](payload)
        return payload


@dataclass(frozen=True, slots=True)
class NewEvent(Generic[P]):
    """An event a command decided to append: its type, validated payload and metadata."""

    type: EventType[P]
    payload: P
    metadata: BaseModel | dict[str, Any] | None = None


class StoredEvent(NamedTuple):
    """The serialized form of an event as the journal keeps it (JSON-ready, immutable)."""

    store: str
    aggregate_id: str
    version: int
    type: str
    payload: dict[str, Any]
    timestamp_us: int
    command_id: str | None = None
    schema_version: int = 1
    metadata: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        """The event's id: unique because a stream never forks."""
        return f"{self.store}:{self.aggregate_id}:{self.version}"

    def to_json(self) -> dict[str, Any]:
        """A compact JSON-ready dict."""
        d: dict[str, Any] = {
            "s": self.store, "a": self.aggregate_id, "v": self.version, "t": self.type,
            "p": self.payload, "ts": self.timestamp_us,
        }
        if self.command_id is not None:
            d["c"] = self.command_id
        if self.schema_version != 1:
            d["sv"] = self.schema_version
        if self.metadata:
            d["m"] = self.metadata
        return d

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> StoredEvent:
        """Parse :meth:`to_json` output (raises KeyError/TypeError on a damaged record)."""
        return StoredEvent(
            store=d["s"], aggregate_id=d["a"], version=int(d["v"]), type=d["t"], payload=d["p"],
            timestamp_us=int(d["ts"]), command_id=d.get("c"), schema_version=int(d.get("sv", 1)),
            metadata=d.get("m"),
        )


class Event(NamedTuple, Generic[P]):
    """An event as reducers, actions and views see it: the envelope around a typed payload
    (immutable; a tuple underneath, which keeps the hot path cheap)."""

    store: str
    aggregate_id: str
    version: int
    type: str
    payload: P
    timestamp: datetime
    command_id: str | None = None
    metadata: Any = None

    @property
    def id(self) -> str:
        """The event's id: ``store:aggregate_id:version`` (a stream never forks)."""
        return f"{self.store}:{self.aggregate_id}:{self.version}"

    def is_a(self, event_type: EventType[Any]) -> bool:
        """Whether this event is of the given type."""
        return self.type == event_type.name


def timestamp_of(us: int) -> datetime:
    """Microseconds since the epoch → an aware UTC datetime."""
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)
