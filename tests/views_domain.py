"""A small bank for the view tests: accounts, a state view, a keyed-by-owner view, facts."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field

from talix_ray import DomainError, Event, EventStore, EventType, Service, fact_view, state_view


class Opened(BaseModel):
    owner: str


class Deposited(BaseModel):
    amount: Decimal = Field(max_digits=12, decimal_places=2)


class Closed(BaseModel):
    pass


opened = EventType("BANK:OPENED", Opened)
deposited = EventType("BANK:DEPOSITED", Deposited)
closed = EventType("BANK:CLOSED", Closed)


class Account(BaseModel):
    owner: str
    balance: Decimal
    open: bool = True


def reduce(state: Account | None, event: Event) -> Account | None:
    match event.payload:
        case Opened(owner=owner):
            return Account(owner=owner, balance=Decimal(0))
        case Deposited(amount=amount) if state is not None:
            return state.model_copy(update={"balance": state.balance + amount})
        case Closed() if state is not None:
            return state.model_copy(update={"open": False})
    return state


accounts = EventStore("accounts", [opened, deposited, closed], reduce)


class Open(BaseModel):
    owner: str


class Deposit(BaseModel):
    amount: Decimal


@accounts.command
def open_account(state: Account | None, input: Open):
    return opened(owner=input.owner)


@accounts.command
def deposit(state: Account | None, input: Deposit):
    if state is None or not state.open:
        raise DomainError("no open account")
    return deposited(amount=input.amount)


@accounts.command
def close(state: Account | None, input: Open):
    return closed()


class Balance(BaseModel):
    account_id: str
    owner: str
    balance: Decimal = Field(max_digits=14, decimal_places=2)
    deposits: int = 0


balances = state_view("balances", Balance, key="account_id")


@balances.on(opened)
def _opened(row: Balance | None, event: Event[Opened]) -> Balance:
    return Balance(account_id=event.aggregate_id, owner=event.payload.owner, balance=Decimal(0))


@balances.on(deposited)
def _deposited(row: Balance | None, event: Event[Deposited]) -> Balance | None:
    if row is None:
        return None
    return row.model_copy(update={"balance": row.balance + event.payload.amount,
                                  "deposits": row.deposits + 1})


@balances.on(closed)
def _closed(row: Balance | None, event: Event[Closed]) -> None:
    return None  # closed accounts leave the view


class Owner(BaseModel):
    owner: str
    accounts: int


owners = state_view("owners", Owner, key="owner")


@owners.on(opened, key=lambda e: e.payload.owner)
def _owner_opened(row: Owner | None, event: Event[Opened]) -> Owner:
    return Owner(owner=event.payload.owner, accounts=(row.accounts if row else 0) + 1)


class DepositFact(BaseModel):
    account_id: str
    version: int
    amount: Decimal = Field(max_digits=12, decimal_places=2)
    tags: list[str] = []
    extra: dict = {}


deposits = fact_view("deposits", DepositFact)


@deposits.on(deposited)
def _deposit_fact(event: Event[Deposited]) -> DepositFact:
    return DepositFact(account_id=event.aggregate_id, version=event.version,
                       amount=event.payload.amount, tags=["d"], extra={"v": event.version})


service = Service("bank", stores=[accounts], projections=[balances, owners, deposits])
