"""The domain of the actions benchmark: light event-triggered actions and a bank saga."""

from __future__ import annotations

from pydantic import BaseModel, Field

from talix_ray import (
    Context,
    DomainError,
    Event,
    EventStore,
    EventType,
    NotFound,
    Service,
    action,
    on_event,
)


class Created(BaseModel):
    n: int


class Marked(BaseModel):
    source: str


created = EventType("BENCH:CREATED", Created)
marked = EventType("BENCH:MARKED", Marked)


def _count(state: int | None, event: Event) -> int:
    return (state or 0) + 1


items = EventStore("items", [created], _count)
marks = EventStore("marks", [marked], _count)


class Create(BaseModel):
    n: int = 1


class Mark(BaseModel):
    source: str


@items.command
def create_item(state: int | None, input: Create):
    return created(n=input.n)


@marks.command
def mark(state: int | None, input: Mark):
    return marked(source=input.source)


@action(on_event(created))
async def mark_item(event: Event[Created], ctx: Context) -> None:
    """A light action: no declared resources, one command."""
    await ctx.run(mark, event.aggregate_id, Mark(source=event.id))


light = Service("light", stores=[items, marks], actions=[mark_item])


# -- the saga -----------------------------------------------------------------------------------
class Moved(BaseModel):
    amount: int


deposited = EventType("BANK:DEPOSITED", Moved)
withdrawn = EventType("BANK:WITHDRAWN", Moved)


class Account(BaseModel):
    balance: int = 0


def _account(state: Account | None, event: Event) -> Account:
    balance = state.balance if state else 0
    sign = 1 if event.type == deposited.name else -1
    return Account(balance=balance + sign * event.payload.amount)


accounts = EventStore("accounts", [deposited, withdrawn], _account)


class Amount(BaseModel):
    amount: int = Field(gt=0)


@accounts.command
def deposit(state: Account | None, input: Amount):
    return deposited(amount=input.amount)


@accounts.command
def withdraw(state: Account | None, input: Amount):
    if state is None:
        raise NotFound("no such account")
    if state.balance < input.amount:
        raise DomainError("insufficient funds")
    return withdrawn(amount=input.amount)


class Requested(BaseModel):
    source: str
    target: str
    amount: int


requested = EventType("BANK:TRANSFER_REQUESTED", Requested)
transfers = EventStore("transfers", [requested], _count)


class Request(BaseModel):
    source: str
    target: str
    amount: int = Field(gt=0)


@transfers.command
def request_transfer(state: int | None, input: Request):
    return requested(**input.model_dump())


async def _saga(event: Event[Requested], ctx: Context) -> None:
    t = event.payload
    await ctx.run(withdraw, t.source, Amount(amount=t.amount))
    try:
        await ctx.run(deposit, t.target, Amount(amount=t.amount))
    except DomainError:
        await ctx.run(deposit, t.source, Amount(amount=t.amount))


@action(on_event(requested), name="saga")
async def saga(event: Event[Requested], ctx: Context) -> None:
    """Withdraw, deposit, refund on failure — every step recorded (durable)."""
    await _saga(event, ctx)


@action(on_event(requested), name="saga_plain", durable=False)
async def saga_plain(event: Event[Requested], ctx: Context) -> None:
    """The same saga without recording its steps."""
    await _saga(event, ctx)


bank = Service("bank", stores=[accounts, transfers], actions=[saga])
bank_plain = Service("bank", stores=[accounts, transfers], actions=[saga_plain])
