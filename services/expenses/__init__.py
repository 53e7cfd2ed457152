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

service = Service("expenses", stores=[expenses], actions=[approve], queries=[get_expense])

__all__ = ["ApproveExpense", "CreateExpense", "Expense", "approve_expense", "create_expense",
           "expense_approved", "expense_created", "expenses", "service"]
