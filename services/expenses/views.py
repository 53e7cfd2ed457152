"""The ``expenses`` view: one row per expense, for analytics (totals by vendor and month)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pydantic import BaseModel, Field

from talix_ray import Event, state_view

from .model import (
    ExpenseApproved,
    ExpenseCreated,
    ExpenseRejected,
    expense_approved,
    expense_created,
    expense_rejected,
)


class ExpenseRow(BaseModel):
    expense_id: str
    document_id: str
    vendor: str | None
    date: dt.date | None
    month: str | None = Field(description="YYYY-MM of the receipt's date")
    amount: Decimal = Field(max_digits=14, decimal_places=2)
    currency: str
    status: str
    approved_by: str | None = None
    needs_review: bool = False
    created_at: dt.datetime


expense_rows = state_view("expenses", ExpenseRow, key="expense_id")


@expense_rows.on(expense_created)
def created(row: ExpenseRow | None, event: Event[ExpenseCreated]) -> ExpenseRow:
    p = event.payload
    return ExpenseRow(expense_id=event.aggregate_id, document_id=p.document_id, vendor=p.vendor,
                      date=p.date, month=p.date.strftime("%Y-%m") if p.date else None,
                      amount=p.amount, currency=p.currency, status="OPEN",
                      needs_review=p.needs_review, created_at=event.timestamp)


@expense_rows.on(expense_approved)
def approved(row: ExpenseRow | None, event: Event[ExpenseApproved]) -> ExpenseRow | None:
    if row is None:
        return None
    return row.model_copy(update={"status": "APPROVED", "approved_by": event.payload.approved_by})


@expense_rows.on(expense_rejected)
def rejected(row: ExpenseRow | None, event: Event[ExpenseRejected]) -> ExpenseRow | None:
    if row is None:
        return None
    return row.model_copy(update={"status": "REJECTED"})
