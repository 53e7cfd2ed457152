"""A bank: accounts, transfers and a saga that withdraws, deposits and refunds.

The saga's first attempt can be made to crash right after its refund, once the target
account exists (``crash_after_refund``): the scenario where a retry that is not durable takes
the other branch and creates money.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field

from talix_ray import (
    Context,
    DomainError,
    Event,
    EventStore,
    EventType,
    NotFound,
    Retry,
    Service,
    action,
    on_event,
)


class Opened(BaseModel):
    pass


class Deposited(BaseModel):
    amount: int


class Withdrawn(BaseModel):
    amount: int


opened = EventType("BANK:OPENED", Opened)
deposited = EventType("BANK:DEPOSITED", Deposited)
withdrawn = EventType("BANK:WITHDRAWN", Withdrawn)


class Account(BaseModel):
    balance: int = 0


def reduce_account(state: Account | None, event: Event) -> Account | None:
    match event.payload:
        case Opened():
            return Account()
        case Deposited(amount=a) if state is not None:
            return Account(balance=state.balance + a)
        case Withdrawn(amount=a) if state is not None:
            return Account(balance=state.balance - a)
    return state


accounts = EventStore("accounts", [opened, deposited, withdrawn], reduce_account)


class Open(BaseModel):
    pass


class Amount(BaseModel):
    amount: int = Field(gt=0)


@accounts.command
def open_account(state: Account | None, input: Open):
    return None if state is not None else opened()


@accounts.command
def deposit(state: Account | None, input: Amount):
    if state is None:
        raise NotFound("no such account")
    return deposited(amount=input.amount)


@accounts.command
def withdraw(state: Account | None, input: Amount):
    if state is None:
        raise NotFound("no such account")
    if state.balance < input.amount:
        raise DomainError("insufficient funds")
    return withdrawn(amount=input.amount)


class TransferRequested(BaseModel):
    source: str
    target: str
    amount: int
    crash_after_refund: bool = False


transfer_requested = EventType("BANK:TRANSFER_REQUESTED", TransferRequested)


class TransferCompleted(BaseModel):
    outcome: str


transfer_completed = EventType("BANK:TRANSFER_COMPLETED", TransferCompleted)


class Transfer(BaseModel):
    status: str = "PENDING"


def reduce_transfer(state: Transfer | None, event: Event) -> Transfer | None:
    match event.payload:
        case TransferRequested():
            return Transfer()
        case TransferCompleted(outcome=o):
            return Transfer(status=o)
    return state


transfers = EventStore("transfers", [transfer_requested, transfer_completed], reduce_transfer)


class Request(BaseModel):
    source: str
    target: str
    amount: int = Field(gt=0)
    crash_after_refund: bool = False


@transfers.command
def request_transfer(state: Transfer | None, input: Request):
    return None if state is not None else transfer_requested(**input.model_dump())


class Complete(BaseModel):
    outcome: str


@transfers.command
def complete_transfer(state: Transfer | None, input: Complete):
    if state is None or state.status != "PENDING":
        return None
    return transfer_completed(outcome=input.outcome)


class Crash(Exception):
    """A crash of the action's process, as far as the dispatcher can tell."""


@action(on_event(transfer_requested), retry=Retry(max_attempts=5, initial_backoff=0.05))
async def transfer_saga(event: Event[TransferRequested], ctx: Context) -> None:
    """Withdraw from the source, deposit to the target; refund the source if that fails."""
    t = event.payload
    try:
        await ctx.run(withdraw, t.source, Amount(amount=t.amount))
    except (DomainError, NotFound):
        await ctx.run(complete_transfer, event.aggregate_id, Complete(outcome="REJECTED"))
        return
    try:
        await ctx.run(deposit, t.target, Amount(amount=t.amount))
    except NotFound:
        await ctx.run(deposit, t.source, Amount(amount=t.amount))  # the refund
        if t.crash_after_refund and ctx.attempt == 1:
            # the test opens the target once it sees the refund; crash after that
            for _ in range(400):
                if await ctx.load(accounts, t.target) is not None:
                    break
                await asyncio.sleep(0.025)
            raise Crash("the worker died after the refund") from None
        await ctx.run(complete_transfer, event.aggregate_id, Complete(outcome="REFUNDED"))
        return
    await ctx.run(complete_transfer, event.aggregate_id, Complete(outcome="DONE"))


service = Service("bank", stores=[accounts, transfers], actions=[transfer_saga])
