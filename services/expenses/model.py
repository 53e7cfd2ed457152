"""Expenses: created from analyzed documents, approved by a person."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

from talix_ray import (
    AlreadyExists,
    DomainError,
    Event,
    EventStore,
    EventType,
    NewEvent,
    NotFound,
)

Currency = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")


class ExpenseCreated(BaseModel):
    """An expense was recorded from a document."""

    document_id: str
    vendor: str | None = None
    date: dt.date | None = None
    amount: Decimal
    currency: str = Currency
    needs_review: bool = False  # the analysis was not sure of a field: a person should check
    confidence: float | None = None  # the analysis's weakest field, in [0, 1]


class ExpenseApproved(BaseModel):
    """Someone approved the expense."""

    approved_by: str


class ExpenseRejected(BaseModel):
    """Someone rejected the expense."""

    rejected_by: str
    reason: str | None = None


expense_created = EventType("EXPENSES:EXPENSE_CREATED", ExpenseCreated)
expense_approved = EventType("EXPENSES:EXPENSE_APPROVED", ExpenseApproved)
expense_rejected = EventType("EXPENSES:EXPENSE_REJECTED", ExpenseRejected)


class Expense(BaseModel):
    """The current state of an expense."""

    document_id: str
    vendor: str | None
    date: dt.date | None
    amount: Decimal
    currency: str
    status: Literal["OPEN", "APPROVED", "REJECTED"]
    created_at: dt.datetime
    approved_by: str | None = None
    rejected_by: str | None = None
    reason: str | None = None
    needs_review: bool = False
    confidence: float | None = None


def reduce(state: Expense | None, event: Event[BaseModel]) -> Expense | None:
    match event.payload:
        case ExpenseCreated() as p:
            return Expense(**p.model_dump(), status="OPEN", created_at=event.timestamp)
        case ExpenseApproved(approved_by=who) if state is not None:
            return state.model_copy(update={"status": "APPROVED", "approved_by": who})
        case ExpenseRejected(rejected_by=who, reason=reason) if state is not None:
            return state.model_copy(update={"status": "REJECTED", "rejected_by": who,
                                            "reason": reason})
    return state


expenses = EventStore("expenses", [expense_created, expense_approved, expense_rejected],
                      reduce)


class CreateExpense(BaseModel):
    document_id: str = Field(min_length=1)
    vendor: str | None = Field(default=None, max_length=200)
    date: dt.date | None = None
    amount: Decimal = Field(gt=0, max_digits=14, decimal_places=2)
    currency: str = Currency
    needs_review: bool = False
    confidence: float | None = Field(default=None, ge=0, le=1)


@expenses.command
def create_expense(state: Expense | None, input: CreateExpense) -> NewEvent[Any]:
    if state is not None:
        raise AlreadyExists("this expense exists already")
    return expense_created(**input.model_dump())


class ApproveExpense(BaseModel):
    approved_by: str = Field(min_length=1, max_length=200)


@expenses.command
def approve_expense(state: Expense | None, input: ApproveExpense) -> NewEvent[Any]:
    if state is None:
        raise NotFound("no such expense")
    if state.status != "OPEN":
        raise DomainError(f"this expense is {state.status.lower()} already")
    return expense_approved(approved_by=input.approved_by)


class RejectExpense(BaseModel):
    rejected_by: str = Field(min_length=1, max_length=200)
    reason: str | None = Field(default=None, max_length=500)


@expenses.command
def reject_expense(state: Expense | None, input: RejectExpense) -> NewEvent[Any]:
    if state is None:
        raise NotFound("no such expense")
    if state.status != "OPEN":
        raise DomainError(f"this expense is {state.status.lower()} already")
    return expense_rejected(**input.model_dump())
