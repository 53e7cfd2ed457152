"""Idempotent calls: an action called with an ``Idempotency-Key`` runs once per key.

Each (action, caller, key) has a record in the built-in ``talix-calls`` store, kept in the log
like any aggregate: ``begin`` claims it (one writer per aggregate, so two concurrent requests
cannot both win), the action runs with command ids derived from the record (a retry after a
crash re-sends the same ids, so its commands apply once), and ``finish`` records the outcome —
the result, or the talix error the caller got. The same key again replays that outcome without
running anything; the same key with a different input is refused; a key expires after its TTL.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, JsonValue

from ..model.errors import TalixError, ValidationError
from ..model.events import Event, EventType
from ..model.principal import Principal
from ..model.store import EventStore

MAX_KEY_LENGTH = 255
MAX_RECORDED_BYTES = 512 * 1024


class CallStarted(BaseModel):
    """A caller claimed the record: it runs the action until ``lease_until_us``.

    ``generation`` grows when an expired key is used again; a run that takes over from a
    crashed one keeps its generation, so it re-sends the same command ids.
    """

    fingerprint: str
    token: str
    generation: int = 1
    started_us: int
    expires_us: int
    lease_until_us: int


class CallFinished(BaseModel):
    """The action's outcome: ``{"ok": result, "versions": [...]}`` or ``{"error": problem}``."""

    token: str
    outcome: dict[str, JsonValue]


class CallAbandoned(BaseModel):
    """The run failed without an answer worth replaying (a crash, a 5xx): retry may run."""

    token: str


call_started = EventType("TALIX:CALL_STARTED", CallStarted)
call_finished = EventType("TALIX:CALL_FINISHED", CallFinished)
call_abandoned = EventType("TALIX:CALL_ABANDONED", CallAbandoned)


class CallRecord(BaseModel):
    """The state of one idempotency key."""

    fingerprint: str
    token: str
    generation: int
    expires_us: int
    lease_until_us: int
    outcome: dict[str, JsonValue] | None = None


def _reduce(state: CallRecord | None, event: Event[Any]) -> CallRecord | None:
    p = event.payload
    if isinstance(p, CallStarted):
        return CallRecord(fingerprint=p.fingerprint, token=p.token, generation=p.generation,
                          expires_us=p.expires_us, lease_until_us=p.lease_until_us)
    if state is None:
        return state
    if isinstance(p, CallFinished):
        return state.model_copy(update={"outcome": p.outcome})
    if isinstance(p, CallAbandoned):
        return state.model_copy(update={"lease_until_us": 0})
    return state


calls = EventStore("talix-calls", [call_started, call_finished, call_abandoned], _reduce)


class BeginCall(BaseModel):
    """Claim the record for ``token`` unless it holds an outcome or a live lease."""

    fingerprint: str
    token: str
    now_us: int
    ttl_us: int
    lease_us: int


@calls.command
def begin_call(state: CallRecord | None, input: BeginCall) -> Any:
    """Start (or take over) a call; a different input under a live key is refused."""
    now = input.now_us
    generation = 1
    if state is not None:
        generation = state.generation + 1
        if state.expires_us > now:
            if state.fingerprint != input.fingerprint:
                raise ValidationError(
                    "this Idempotency-Key was used with a different request",
                    [{"field": "Idempotency-Key", "message": "reused with a different request",
                      "type": "idempotency_key_reused"}])
            if state.outcome is not None or state.lease_until_us > now:
                return None  # answered already, or another caller is running it
            generation = state.generation  # take over a run that crashed or gave up
    return call_started(fingerprint=input.fingerprint, token=input.token,
                        generation=generation, started_us=now, expires_us=now + input.ttl_us,
                        lease_until_us=now + input.lease_us)


class FinishCall(BaseModel):
    """Record the outcome of the run that holds ``token``."""

    token: str
    outcome: dict[str, JsonValue]


@calls.command
def finish_call(state: CallRecord | None, input: FinishCall) -> Any:
    """Record the outcome once, and only for the run that holds the record."""
    if state is None or state.token != input.token or state.outcome is not None:
        return None
    return call_finished(token=input.token, outcome=input.outcome)


class AbandonCall(BaseModel):
    """Release the record held by ``token`` without an outcome."""

    token: str


@calls.command
def abandon_call(state: CallRecord | None, input: AbandonCall) -> Any:
    """Let a retry run at once (the run failed in a way not worth replaying)."""
    if state is None or state.token != input.token or state.outcome is not None:
        return None
    return call_abandoned(token=input.token)


# -- helpers ---------------------------------------------------------------------------------
def check_idempotency_key(key: object) -> str:
    """A key is 1-255 visible ASCII characters (what an HTTP header can carry)."""
    if (not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH
            or not all(0x21 <= ord(c) <= 0x7E for c in key)):
        raise ValidationError(f"invalid Idempotency-Key: 1-{MAX_KEY_LENGTH} visible ASCII "
                              "characters", [{"field": "Idempotency-Key",
                                              "message": "1-255 visible ASCII characters",
                                              "type": "idempotency_key_invalid"}])
    return key


def record_id(action: str, principal: Principal | None, key: str) -> str:
    """The record of (action, caller, key): a fixed-size id, whatever the key holds."""
    who = principal.id if principal is not None else "anonymous"
    raw = f"{action}\x00{who}\x00{key}".encode()
    return hashlib.sha256(raw).hexdigest()[:40]


def fingerprint(data: Any) -> str:
    """A hash of a validated input (files by their content's hash)."""
    value = data.model_dump(mode="python") if isinstance(data, BaseModel) else data
    return hashlib.sha256(orjson.dumps(value, default=_canonical,
                                       option=orjson.OPT_SORT_KEYS)).hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return "sha256:" + hashlib.sha256(bytes(value)).hexdigest()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return str(value)


def recordable(outcome: dict[str, Any]) -> dict[str, Any]:
    """The outcome, or a marker when it is too large to keep in the log."""
    if len(orjson.dumps(outcome)) > MAX_RECORDED_BYTES:
        return {"too_large": True}
    return outcome


def error_record(exc: TalixError) -> dict[str, Any]:
    """A talix error as recorded: its problem body and its class (to raise it again)."""
    cls = type(exc)
    return {"error": exc.to_problem(), "class": f"{cls.__module__}:{cls.__qualname__}"}


def recorded_error(record: dict[str, Any]) -> TalixError:
    """The recorded error again, of its own class where that class can still be imported
    (so ``except NotFound`` on a replay catches what it caught the first time); a
    :class:`ReplayedError` with the same problem body otherwise."""
    problem = dict(record["error"])
    path = record.get("class")
    if isinstance(path, str) and ":" in path:
        module, _, qualname = path.partition(":")
        try:
            cls: Any = importlib.import_module(module)
            for part in qualname.split("."):
                cls = getattr(cls, part)
        except (ImportError, AttributeError):
            cls = None
        if isinstance(cls, type) and issubclass(cls, TalixError):
            exc = cls.__new__(cls)
            message = str(problem.get("detail", ""))
            Exception.__init__(exc, message)
            exc.message = message
            exc.details = {k: v for k, v in problem.items()
                           if k not in ("type", "title", "status", "detail")}
            if "errors" in exc.details:
                # as ValidationError.__init__ sets it; any talix error class may carry it
                exc.errors = list(exc.details["errors"])  # type: ignore[attr-defined]
            return exc
    return ReplayedError(problem)


class ReplayedError(TalixError):
    """A talix error recorded under an Idempotency-Key, raised again for a repeat."""

    def __init__(self, problem: dict[str, Any]) -> None:
        super().__init__(str(problem.get("detail", "")))
        self.problem = problem
        self.code = str(problem.get("type", "urn:talix:error:error")).rsplit(":", 1)[-1]
        self.status = int(problem.get("status", 500))

    def to_problem(self) -> dict[str, Any]:
        return dict(self.problem)


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What an action call returned, where its commands left their aggregates, and whether
    it is the replay of an earlier call with the same Idempotency-Key."""

    value: Any
    versions: tuple[tuple[str, str, int], ...] = ()
    replayed: bool = False
