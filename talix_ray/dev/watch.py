"""Following uploaded documents until they are analyzed, with the expenses view on screen."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .client import ApiClient


def expenses_table(rows: list[dict[str, Any]], title: str) -> Table:
    """The expenses view's rows as a table."""
    table = Table("vendor", "date", "total", "status", "review?", title=title)
    for r in rows:
        table.add_row(r["vendor"] or "?", r["date"] or "?", f"{r['amount']} {r['currency']}",
                      r["status"], "yes" if r["needs_review"] else "")
    return table


def follow(api: ApiClient, documents: dict[str, str], console: Console, *,
           timeout: float | None = None, show: int = 15) -> bool:
    """Poll every document of ``documents`` (name → id) until it is analyzed or failed and
    the expenses view holds every expense found, printing each outcome and the view as it
    grows. Returns whether all of that happened before ``timeout`` (``None``: wait)."""
    pending = dict(documents)
    expected: set[str] = set()  # ids of documents that are expenses
    deadline = None if timeout is None else time.monotonic() + timeout
    rows: list[dict[str, Any]] = []

    def screen() -> Group:
        done = len(documents) - len(pending)
        in_view = len({r["document_id"] for r in rows} & expected)
        line = Text(f"{done}/{len(documents)} document(s) analyzed, {in_view}/{len(expected)} "
                    "expense(s) in the view", style="bold")
        return Group(line, expenses_table(rows[:show], f"the expenses view (newest {show})"))

    with Live(screen(), console=console, refresh_per_second=2, transient=False) as live:
        while True:
            for name, doc_id in list(pending.items()):
                doc = api.document(doc_id)
                if doc["status"] == "CREATED":
                    continue
                del pending[name]
                if doc["status"] == "FAILED":
                    console.print(f"[yellow]{name}[/yellow]: not readable "
                                  f"({doc.get('failure_reason')})")
                elif doc.get("is_expense"):
                    expected.add(doc_id)
                    console.print(f"[green]{name}[/green]: an expense")
                else:
                    console.print(f"{name}: not an expense")
            rows = api.expenses(limit=1000)
            live.update(screen())
            if not pending and expected <= {r["document_id"] for r in rows}:
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(1.0)
