"""`talix streams` and `talix events`: the aggregates of an event store and their events."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import typer

from .common import STORE_OPTION, _guard, _settings, app, console

if TYPE_CHECKING:
    from ..journal.base import Journal

T = TypeVar("T")


def _token(after: str | None) -> str | None:
    return None if after is None else base64.urlsafe_b64encode(after.encode()).decode()


def _after(token: str | None) -> str | None:
    """The id a page token stands for; ValueError for a token this command did not make."""
    if not token:
        return None
    try:
        after = base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except ValueError:
        after = ""
    if not after:
        raise ValueError(f"invalid page token {token!r}")
    return after


async def _with_journal(store: str | None, work: Callable[[Journal], Awaitable[T]]) -> T:
    from ..views.admin import read_journal

    journal = read_journal(_settings(store))
    await journal.open()
    try:
        return await work(journal)
    finally:
        await journal.close()


@app.command("streams")
def streams_cmd(
    event_store: str = typer.Argument(..., metavar="STORE",
                                      help="the event store (its name in the services)"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="ids per page"),
    page_token: str = typer.Option(None, "--page-token",
                                   help="the next_page_token of the previous page"),
    store: str = STORE_OPTION,
    json_out: bool = typer.Option(False, "--json", help="print the page as JSON"),
) -> None:
    """List the aggregate ids of an event store, a page at a time (in id order)."""
    from ..model.names import check_name

    def run() -> tuple[list[str], str | None]:
        check_name("event store", event_store)
        after = _after(page_token)

        async def page(journal: Journal) -> list[str]:
            return await journal.list_aggregate_ids(event_store, limit=limit + 1, after=after)

        ids = asyncio.run(_with_journal(store, page))
        more = len(ids) > limit
        ids = ids[:limit]
        return ids, _token(ids[-1]) if more else None

    ids, token = _guard(run)
    if json_out:
        print(json.dumps({"store": event_store, "ids": ids, "next_page_token": token}))
        return
    from rich.table import Table

    table = Table("aggregate id", title=f"{event_store}: {len(ids)} stream(s)")
    for i in ids:
        table.add_row(i)
    console.print(table)
    if token:
        console.print(f"next page: --page-token {token}", soft_wrap=True, highlight=False)


@app.command("events")
def events_cmd(
    event_store: str = typer.Argument(..., metavar="STORE", help="the event store"),
    aggregate_id: str = typer.Argument(..., metavar="ID", help="the aggregate"),
    first: int = typer.Option(1, "--from", min=1, help="first version"),
    last: int = typer.Option(None, "--to", min=1, help="last version (default: the newest)"),
    store: str = STORE_OPTION,
    json_out: bool = typer.Option(False, "--json", help="print the events as JSON"),
) -> None:
    """Print an aggregate's events: version, type, time, command id, payload."""
    from ..model.errors import NotFound
    from ..model.events import StoredEvent, timestamp_of
    from ..model.names import check_aggregate_id, check_name

    def run() -> list[StoredEvent]:
        check_name("event store", event_store)
        check_aggregate_id(aggregate_id)
        if last is not None and last < first:
            raise ValueError(f"--to {last} is before --from {first}")

        async def read(journal: Journal) -> list[StoredEvent]:
            return await journal.read_stream(event_store, aggregate_id, after_version=first - 1)

        events = [e for e in asyncio.run(_with_journal(store, read))
                  if last is None or e.version <= last]
        if not events and first == 1:
            raise NotFound(f"no events for {event_store}/{aggregate_id}")
        return events

    events = _guard(run)
    rows: list[dict[str, object]] = [
        {"version": e.version, "type": e.type,
         "time": timestamp_of(e.timestamp_us).isoformat(timespec="milliseconds"),
         "command_id": e.command_id, "payload": e.payload, "metadata": e.metadata}
        for e in events]
    if json_out:
        print(json.dumps({"store": event_store, "id": aggregate_id, "events": rows},
                         default=str))
        return
    from rich.table import Table

    table = Table("version", "type", "time", "command id", "payload",
                  title=f"{event_store}/{aggregate_id}: {len(rows)} event(s)")
    for r in rows:
        payload = json.dumps(r["payload"], default=str)
        table.add_row(str(r["version"]), str(r["type"]), str(r["time"]),
                      str(r["command_id"] or "-"),
                      payload if len(payload) <= 120 else payload[:117] + "...")
    console.print(table)
