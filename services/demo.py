"""The example's demo (``talix dev`` and ``talix demo`` run it): generated receipts uploaded
through the API — from a URL on the development file server, or as multipart files — then
followed until each is analyzed and every expense is in the expenses view."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from talix_ray.dev import ApiClient, ApiError
from talix_ray.dev.demo import DemoOutcome, DemoSession

from .documents.receipts import generate


class ExpensesApi(ApiClient):
    """The example's routes, over a plain :class:`ApiClient`."""

    def upload_url(self, url: str) -> str:
        """``POST /documents/upload-from-url``: the new document's id."""
        return str(self.call("POST", "/documents/upload-from-url", json={"url": url})
                   ["document_id"])

    def upload_file(self, name: str, content: bytes, content_type: str) -> str:
        """``POST /documents`` (multipart): the new document's id."""
        return str(self.call("POST", "/documents",
                             files={"file": (name, content, content_type)})["document_id"])

    def document(self, document_id: str) -> dict[str, Any]:
        """``GET /documents/{id}``."""
        return dict(self.call("GET", f"/documents/{document_id}"))

    def expense(self, expense_id: str) -> dict[str, Any] | None:
        """``GET /expenses/{id}`` (``None`` when there is none)."""
        try:
            return dict(self.call("GET", f"/expenses/{expense_id}"))
        except ApiError as exc:
            if " 404 " in str(exc):
                return None
            raise

    def expenses(self, limit: int = 1000, **filters: str) -> list[dict[str, Any]]:
        """``GET /expenses`` (from the expenses view, newest first)."""
        return list(self.call("GET", "/expenses", params={"limit": limit, **filters})
                    ["items"])


def run(session: DemoSession) -> DemoOutcome:
    """Upload ``session.count`` generated receipts (three in four are expenses) and, if asked,
    follow them: whether all were analyzed and in the view in time, and the document id of
    each file."""
    api = ExpensesApi(session.url, session.key)
    uploaded: dict[str, str] = {}
    with api:
        for doc in generate(session.count, session.seed):
            if session.files is not None:
                uploaded[doc.name] = api.upload_url(session.files.add(doc.name, doc.content))
            else:
                uploaded[doc.name] = api.upload_file(doc.name, doc.content, doc.content_type)
        how = ("from a file server on loopback: POST /documents/upload-from-url"
               if session.files is not None else "as files: POST /documents")
        session.console.print(f"uploaded {len(uploaded)} generated receipt(s) (seed "
                              f"{session.seed}) {how}")
        if session.files is not None and uploaded:
            sample = session.files.folder / next(iter(uploaded))
            session.console.print(
                "upload one yourself:\n"
                f'  curl -H "X-API-Key: $(cat {session.key_file})" -F file=@{sample} '
                f"{api.base_url}/documents", soft_wrap=True, markup=False, highlight=False)
        done = not session.follow or follow(api, uploaded, session.console,
                                            timeout=session.timeout)
        return DemoOutcome(done, uploaded)


def expenses_table(rows: list[dict[str, Any]], title: str) -> Table:
    """The expenses view's rows as a table."""
    table = Table("vendor", "date", "total", "status", "review?", title=title)
    for r in rows:
        table.add_row(r["vendor"] or "?", r["date"] or "?", f"{r['amount']} {r['currency']}",
                      r["status"], "yes" if r["needs_review"] else "")
    return table


def follow(api: ExpensesApi, documents: dict[str, str], console: Console, *,
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
