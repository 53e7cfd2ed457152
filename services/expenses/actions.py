"""HTTP actions and queries of the expenses service."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from talix_ray import Context, NotFound, action, http, query

from .model import (
    ApproveExpense,
    Expense,
    RejectExpense,
    approve_expense,
    expenses,
    reject_expense,
)
from .views import ExpenseRow


class ExpenseId(BaseModel):
    expense_id: str = Field(min_length=1, max_length=200)


class Rejection(BaseModel):
    expense_id: str = Field(min_length=1, max_length=200)
    reason: str | None = Field(default=None, max_length=500)


@action(http.post("/expenses/{expense_id}/approve"), scopes=["expenses:approve"])
async def approve(input: ExpenseId, ctx: Context) -> Expense:
    """Approve an expense (needs the expenses:approve scope); the approver is the caller."""
    who = ctx.principal.id if ctx.principal else "system"
    await ctx.run(approve_expense, input.expense_id, ApproveExpense(approved_by=who))
    return await _expense(ctx, input.expense_id)


@action(http.post("/expenses/{expense_id}/reject"), scopes=["expenses:approve"])
async def reject(input: Rejection, ctx: Context) -> Expense:
    """Reject an expense (needs the expenses:approve scope)."""
    who = ctx.principal.id if ctx.principal else "system"
    await ctx.run(reject_expense, input.expense_id,
                  RejectExpense(rejected_by=who, reason=input.reason))
    return await _expense(ctx, input.expense_id)


@query(http.get("/expenses/{expense_id}"))
async def get_expense(input: ExpenseId, ctx: Context) -> Expense:
    """One expense."""
    state = await ctx.load(expenses, input.expense_id)
    if state is None:
        raise NotFound(f"no expense {input.expense_id}")
    return state


class ExpenseFilter(BaseModel):
    vendor: str | None = Field(None, min_length=1, max_length=200)
    month: str | None = Field(None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")
    status: Literal["OPEN", "APPROVED", "REJECTED"] | None = None
    limit: int = Field(100, ge=1, le=1000)


class ExpenseList(BaseModel):
    items: list[ExpenseRow]


_LIST = """
select * from expenses
where ($vendor is null or vendor = $vendor)
  and ($month is null or month = $month)
  and ($status is null or status = $status)
order by date desc nulls last, expense_id
limit $limit
"""


@query(http.get("/expenses"))
async def list_expenses(input: ExpenseFilter, ctx: Context) -> ExpenseList:
    """Expenses from the ``expenses`` view, newest first (filters bound, never pasted)."""
    rows = ctx.views.open("expenses").sql(_LIST, params=input.model_dump()).to_arrow_table()
    return ExpenseList(items=[ExpenseRow.model_validate(r) for r in rows.to_pylist()])


async def _expense(ctx: Context, expense_id: str) -> Expense:
    """The expense a command just changed (it exists: the command succeeded)."""
    expense = await ctx.load(expenses, expense_id)
    if expense is None:
        raise NotFound(f"no expense {expense_id}")
    return expense
