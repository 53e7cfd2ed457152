"""A small domain for the framework's own tests: counters and a ledger."""

from __future__ import annotations

from pydantic import BaseModel, Field

from talix_ray import (
    CommandContext,
    Context,
    DomainError,
    Event,
    EventStore,
    EventType,
    NotFound,
    Retry,
    Service,
    TimerTick,
    action,
    every,
    on_event,
    on_queue,
)


class Added(BaseModel):
    amount: int


class Reset(BaseModel):
    pass


added = EventType("COUNTERS:ADDED", Added)
reset = EventType("COUNTERS:RESET", Reset)


class Counter(BaseModel):
    total: int = 0
    adds: int = 0


def reduce(state: Counter | None, event: Event) -> Counter | None:
    state = state or Counter()
    match event.payload:
        case Added(amount=n):
            return Counter(total=state.total + n, adds=state.adds + 1)
        case Reset():
            return Counter(total=0, adds=state.adds)
    return state


counters = EventStore("counters", [added, reset], reduce)


class Add(BaseModel):
    amount: int = Field(ge=1, le=1_000_000)


@counters.command
def add(state: Counter | None, input: Add):
    return added(amount=input.amount)


@counters.command
def add_twice(state: Counter | None, input: Add):
    return [added(amount=input.amount), added(amount=input.amount)]


class Limit(BaseModel):
    amount: int
    limit: int


@counters.command
def add_below(state: Counter | None, input: Limit):
    if (state.total if state else 0) + input.amount > input.limit:
        raise DomainError(f"would exceed {input.limit}")
    return added(amount=input.amount)


class Copy(BaseModel):
    source: str


@counters.command
async def copy_from(state: Counter | None, input: Copy, ctx: CommandContext):
    other = await ctx.load(counters, input.source)
    if other is None:
        raise NotFound(f"no counter {input.source}")
    return added(amount=other.total)


@counters.command
def broken(state: Counter | None, input: Add):
    return [added(amount=input.amount), "not an event"]


# -- a ledger fed by an action -------------------------------------------------------------------
class Entry(BaseModel):
    source: str
    amount: int
    attempt: int = 1


entry_booked = EventType("LEDGER:BOOKED", Entry)


def reduce_ledger(state: list[Entry] | None, event: Event) -> list[Entry] | None:
    return [*(state or []), event.payload]


ledger = EventStore("ledger", [entry_booked], reduce_ledger)


class Book(BaseModel):
    source: str
    amount: int
    attempt: int = 1


@ledger.command
def book(state: list[Entry] | None, input: Book):
    return entry_booked(**input.model_dump())


# Actions report through commands only: on the RayRuntime they run in other processes.
@action(on_event(added), retry=Retry(max_attempts=3, initial_backoff=0.05))
async def mirror_to_ledger(event: Event[Added], ctx: Context) -> None:
    """Books every addition of counter X to the ledger of X (one entry per event)."""
    agg = event.aggregate_id
    if agg.startswith("flaky") and ctx.attempt < 3:
        raise RuntimeError(f"flaky failure, attempt {ctx.attempt}")
    if agg.startswith("doomed") and await ctx.load(ledger, f"heal-{agg}") is None:
        raise RuntimeError("always fails")
    await ctx.run(book, agg, Book(source=event.id, amount=event.payload.amount,
                                  attempt=ctx.attempt))


class Ping(BaseModel):
    text: str = Field(max_length=20)


@action(on_queue("pings"))
async def on_ping(input: Ping, ctx: Context) -> None:
    await ctx.run(book, "pings", Book(source=input.text, amount=0))


@action(every("200ms"))
async def tick(input: TimerTick, ctx: Context) -> None:
    await ctx.run(book, "ticks", Book(source=f"tick-{input.period}", amount=input.period))


service = Service("counting", stores=[counters, ledger],
                  actions=[mirror_to_ledger, on_ping, tick])
plain_service = Service("counting", stores=[counters, ledger])
