"""The expenses service."""

from talix_ray import Service

from .actions import approve, get_expense, list_expenses, reject
from .model import (
    ApproveExpense,
    CreateExpense,
    Expense,
    RejectExpense,
    approve_expense,
    create_expense,
    expense_approved,
    expense_created,
    expense_rejected,
    expenses,
    reject_expense,
)
from .views import expense_rows

service = Service("expenses", stores=[expenses], actions=[approve, reject],
                  queries=[get_expense, list_expenses],
                  projections=[expense_rows])

__all__ = [
    "ApproveExpense",
    "CreateExpense",
    "Expense",
    "RejectExpense",
    "approve_expense",
    "create_expense",
    "expense_approved",
    "expense_created",
    "expense_rejected",
    "expense_rows",
    "expenses",
    "reject_expense",
    "service",
]
