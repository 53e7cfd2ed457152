"""The expenses service."""

from talix_ray import Service

from .actions import approve, get_expense
from .model import (
    ApproveExpense,
    CreateExpense,
    Expense,
    approve_expense,
    create_expense,
    expense_approved,
    expense_created,
    expenses,
)
from .views import expense_rows

service = Service("expenses", stores=[expenses], actions=[approve], queries=[get_expense],
                  projections=[expense_rows])

__all__ = [
    "ApproveExpense",
    "CreateExpense",
    "Expense",
    "approve_expense",
    "create_expense",
    "expense_approved",
    "expense_created",
    "expense_rows",
    "expenses",
    "service",
]
