"""HTTP actions and queries of the expenses service."""

from __future__ import annotations

from pydantic import BaseModel, Field

from talix_ray import Context, NotFound, action, http, query

from .model import ApproveExpense, Expense, approve_expense, expenses


class ExpenseDecision(BaseModel):
    expense_id: str = Field(min_length=1, max_length=256)


class ExpenseId(BaseModel):
    expense_id: str = Field(min_length=1, max_length=256)


@action(http.post("/expenses/{expense_id}/approve"), scopes=["expenses:approve"])
async def approve(input: ExpenseDecision, ctx: Context) -> Expense:
    """Approve an expense (needs the expenses:approve scope); the approver is the caller."""
    who = ctx.principal.id if ctx.principal else "system"
    await ctx.run(approve_expense, input.expense_id, ApproveExpense(approved_by=who))
    return await ctx.load(expenses, input.expense_id)


@query(http.get("/expenses/{expense_id}"))
async def get_expense(input: ExpenseId, ctx: Context) -> Expense:
    """One expense."""
    state = await ctx.load(expenses, input.expense_id)
    if state is None:
        raise NotFound(f"no expense {input.expense_id}")
    return state
