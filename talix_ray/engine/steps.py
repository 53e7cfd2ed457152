"""Durable steps: what an action invocation did, recorded in the log step by step.

Every ``ctx.run`` and ``ctx.step`` of a durable invocation (triggered by an event, a queue
message, a timer, or an HTTP request with an ``Idempotency-Key``) is a numbered step. Its
outcome — the command's result, the step function's result, or the talix error either raised
— is appended to the invocation's record (the built-in ``talix-invocations`` store) before the
action goes past it. A retry replays recorded outcomes in order without sending anything and
executes only what follows, so a retried saga cannot take another branch; a retry whose step
``n`` is another command, aggregate or step name than the record's stops with
:class:`NonDeterministicAction`.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel

from ..model.errors import TalixError
from ..model.events import Event, EventType
from ..model.store import EventStore

StepKind = Literal["run", "step"]


class NonDeterministicAction(TalixError):
    """A retried action asked for another step than the one recorded at the same position
    (it read something that changed, or is not deterministic). Not retried: dead-lettered."""

    code = "non_deterministic_action"
    status = 500


#: A step's outcome, ``{"ok": <JSON>}`` or ``{"error": <problem>}``. Built only by this module
#: from JSON-mode dumps (``result_json``, ``error_record``, a TypeAdapter's JSON dump), so it is
#: JSON by construction; typed ``Any`` inside because pydantic's ``JsonValue`` re-walked every
#: nested value three times per step (input, event, state) — a third of a durable saga's CPU.
#: A value that is not JSON still fails, when the event is encoded, before anything is stored.
Outcome = dict[str, Any]


class StepRecorded(BaseModel):
    """Step ``n`` of an invocation: what it was (``target``) and how it ended (``outcome``:
    ``{"ok": …}`` or ``{"error": problem}``)."""

    n: int
    kind: StepKind
    target: str
    outcome: Outcome


step_recorded = EventType("TALIX:STEP_RECORDED", StepRecorded)


class Step(BaseModel):
    """A recorded step."""

    kind: StepKind
    target: str
    outcome: Outcome


class InvocationRecord(BaseModel):
    """The recorded steps of one invocation, by number."""

    steps: dict[int, Step] = {}


def _reduce(state: InvocationRecord | None, event: Event[Any]) -> InvocationRecord:
    state = state or InvocationRecord()
    p = event.payload
    if isinstance(p, StepRecorded):
        steps = dict(state.steps)
        steps[p.n] = Step.model_construct(kind=p.kind, target=p.target, outcome=p.outcome)
        return state.model_copy(update={"steps": steps})
    return state


invocations = EventStore("talix-invocations", [step_recorded], _reduce)


class RecordStep(BaseModel):
    """Input of :func:`record_step`."""

    n: int
    kind: StepKind
    target: str
    outcome: Outcome


@invocations.command
def record_step(state: InvocationRecord | None, input: RecordStep) -> Any:
    """Record step ``n`` once; a second record of the same step is a no-op (the first wins —
    a concurrent duplicate run replays it)."""
    if state is not None and input.n in state.steps:
        return None
    return step_recorded(**input.model_dump())


def invocation_id(action: str, trigger: str) -> str:
    """The record of one action's invocation for one trigger (a fixed-size id)."""
    return hashlib.sha256(f"{action}\x00{trigger}".encode()).hexdigest()[:40]


def run_target(store: str, command: str, aggregate_id: str) -> str:
    """How a ``ctx.run`` step is named in the record."""
    return f"{store}.{command}@{aggregate_id}"
