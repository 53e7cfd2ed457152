"""Operating a store: `talix deadletters …` and `talix views …`."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import typer

from .common import APP_HELP, STORE_OPTION, _guard, _load_runtime, _settings, app, console

if TYPE_CHECKING:
    import pyarrow as pa

    from ..views import View

deadletters = typer.Typer(help="Actions given up on after their last attempt.",
                          no_args_is_help=True)
app.add_typer(deadletters, name="deadletters")


@deadletters.command("list")
def deadletters_list(
    store: str = STORE_OPTION,
    json_out: bool = typer.Option(False, "--json", help="print the dead letters as JSON"),
) -> None:
    """List the dead letters of the action dispatcher."""
    from rich.table import Table

    from ..journal import open_journal

    async def run() -> list[dict[str, object]]:
        journal = open_journal(_settings(store), read_only=True)
        await journal.open()
        try:
            return await journal.list_deadletters("dispatcher")
        finally:
            await journal.close()

    letters = _guard(lambda: asyncio.run(run()))
    if json_out:
        print(json.dumps(letters, default=str))
        return
    table = Table("key", "action", "attempts", "error", title=f"{len(letters)} dead letter(s)")
    for d in letters:
        table.add_row(str(d["key"]), str(d["action"]), str(d["attempts"]), str(d["error"])[:80])
    console.print(table)


@deadletters.command("retry")
def deadletters_retry(
    key: str = typer.Argument(..., help="the dead letter's key (see `talix deadletters list`)"),
    app_ref: str = typer.Option("services.app:build_runtime", "--app",
                                help=APP_HELP),
    store: str = STORE_OPTION,
) -> None:
    """Run a dead-lettered action again; the letter is removed when it succeeds."""
    from ..model.errors import TalixError

    async def run() -> None:
        runtime = _load_runtime(app_ref, _settings(store))
        async with runtime:
            try:
                await runtime.retry_deadletter(key)
            except TalixError:
                raise
            except Exception as exc:  # the action failed again: the letter stays
                console.print(f"[red]the action failed again[/red] ({type(exc).__name__}: "
                              f"{exc}); the dead letter stays")
                raise typer.Exit(1) from exc

    _guard(lambda: asyncio.run(run()))
    console.print(f"retried [bold]{key}[/bold]: done, the dead letter is removed")


views_cli = typer.Typer(help="Views: Delta Lake tables projected from the log.",
                        no_args_is_help=True)
app.add_typer(views_cli, name="views")
@views_cli.command("list")
def views_list(
    store: str = STORE_OPTION,
    json_out: bool = typer.Option(False, "--json", help="print the views as JSON"),
) -> None:
    """List the views of a store: table version, rows and lag behind the log."""
    from datetime import UTC, datetime

    from rich.table import Table

    from ..views import admin

    rows = _guard(lambda: asyncio.run(admin.list_views(_settings(store))))
    if json_out:
        print(json.dumps(rows, default=str))
        return
    table = Table("view", "version", "rows", "lag (segments)", "last commit", "kind",
                  title=f"{len(rows)} view(s)")
    for r in rows:
        when = datetime.fromtimestamp(r["last_commit_ms"] / 1000, UTC).isoformat(
            timespec="seconds") if r["last_commit_ms"] else "-"
        table.add_row(r["view"], str(r["version"]), str(r["rows"]), str(r["lag"]), when,
                      r["description"])
    console.print(table)


@views_cli.command("show")
def views_show(
    name: str = typer.Argument(..., help="the view"),
    sql: str = typer.Option(None, "--sql", help="a DuckDB query (the view is a table named "
                            "after it); default: its first rows"),
    limit: int = typer.Option(20, min=1, max=10_000, help="rows to print"),
    store: str = STORE_OPTION,
) -> None:
    """Print a view's schema and rows (or the result of a SQL query over it)."""
    from rich.table import Table

    from ..views import open as open_view

    def run() -> tuple[View, pa.Table]:
        view = open_view(name, _settings(store))
        query = sql or f'select * from "{name}" limit {limit}'
        import duckdb

        try:
            return view, view.sql(query).to_arrow_table().slice(0, limit)
        except duckdb.Error as exc:  # DuckDB's own message names the problem
            raise ValueError(f"the query failed: {exc}") from exc

    view, data = _guard(run)
    console.print(f"[bold]{view.name}[/bold] version {view.version}: "
                  + ", ".join(f"{f.name} {f.type}" for f in view.schema))
    table = Table(*data.column_names, title=f"{data.num_rows} row(s)")
    for row in data.to_pylist():
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    console.print(table)


@views_cli.command("rebuild")
def views_rebuild(
    name: str = typer.Argument(..., help="the view ('events' for the built-in one)"),
    app_ref: str = typer.Option("services.app:build_runtime", "--app",
                                help=APP_HELP),
    store: str = STORE_OPTION,
) -> None:
    """Replay the whole log into a new version of a view (after its row model or handlers
    changed); running runners reload from it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from ..views import admin

    settings = _settings(store)
    the_app = _guard(lambda: _load_runtime(app_ref, settings).app)
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(f"rebuilding {name} (segments)", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        version = _guard(lambda: asyncio.run(admin.rebuild(settings, the_app, name, progress)))
    console.print(f"rebuilt [bold]{name}[/bold]: table version {version}")


