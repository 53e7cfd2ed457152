"""Built-in event stores: durable queues and cluster-wide timers are streams of the log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, JsonValue

from ..model.events import Event, EventType
from ..model.service import Service
from ..model.store import EventStore
from .calls import calls
from .steps import invocations

RESERVED_PREFIX = "talix-"


class Queued(BaseModel):
    """A message put on a durable queue."""

    queue: str
    message: JsonValue


class TimerFired(BaseModel):
    """A timer period fired (exactly one event per period, whatever the number of runtimes)."""

    action: str
    period: int
    scheduled_at: datetime


queued = EventType("TALIX:QUEUED", Queued)
timer_fired = EventType("TALIX:TIMER_FIRED", TimerFired)


def _reduce_queue(state: int | None, event: Event[Any]) -> int:
    return (state or 0) + 1


queues = EventStore("talix-queues", [queued], _reduce_queue)


class Enqueue(BaseModel):
    """Input of the internal enqueue command."""

    queue: str
    message: JsonValue


@queues.command
def enqueue(state: int | None, input: Enqueue) -> Any:
    """Append a message to a queue stream."""
    return queued(queue=input.queue, message=input.message)


class TimerState(BaseModel):
    """The last period a timer fired."""

    last_period: int


def _reduce_timer(state: TimerState | None, event: Event[Any]) -> TimerState | None:
    return TimerState(last_period=event.payload.period)


timers = EventStore("talix-timers", [timer_fired], _reduce_timer)


class Fire(BaseModel):
    """Input of the internal fire command."""

    action: str
    period: int
    scheduled_at: datetime


@timers.command
def fire(state: TimerState | None, input: Fire) -> Any:
    """Fire a timer period once: a period at or below the last one fired is a no-op."""
    if state is not None and state.last_period >= input.period:
        return None
    return timer_fired(**input.model_dump())


system_service = Service("talix-system", stores=[queues, timers, calls, invocations])


def queue_stream_id(queue: str, key: str | None) -> str:
    """The stream of a queue: one per (queue, key); messages of one key stay in order."""
    return queue if key is None else f"{queue}~{key}"
