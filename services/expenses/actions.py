"""HTTP actions and queries of the expenses service."""

from __future__ import annotations

from pydantic import BaseModel

from talix_ray import Context, NotFound, action, http, query

from .model import ApproveExpense, Expense, approve_expense, expenses


class Approval(BaseModel):
    expense_id: str
    approved_by: str


class ExpenseId(BaseModel):
    expense_id: str


@action(http.post("/expenses/{expense_id}/approve"))
async def approve(input: Approval, ctx: Context) -> Expense:
    await ctx.run(approve_expense, input.expense_id, ApproveExpense(approved_by=input.approved_by))
    return await ctx.load(expenses, input.expense_id)


@query(http.get("/expenses/{expense_id}"))
async def get_expense(input: ExpenseId, ctx: Context) -> Expense:
    state = await ctx.load(expenses, input.expense_id)
    if state is None:
        raise NotFound(f"no expense {input.expense_id}")
    return state
