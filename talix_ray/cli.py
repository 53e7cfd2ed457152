"""The ``talix`` command line."""

from __future__ import annotations

import asyncio
import os
import sys

import typer
from rich.console import Console

app = typer.Typer(help="talix-ray: event-sourced services on Ray.", no_args_is_help=True)
console = Console()


@app.callback()
def _root() -> None:
    """talix-ray: event-sourced services on Ray."""


@app.command()
def dev(
    samples: str = typer.Option("services/samples", help="folder of documents to upload"),
    store: str = typer.Option("embedded", help="embedded (SeaweedFS in ./.talix), memory://, "
                              "file:///path or s3://bucket/prefix"),
    data: str = typer.Option(".talix", help="data directory of the embedded stack"),
    ray: bool = typer.Option(False, "--ray/--local",
                             help="aggregates in Ray actors and actions as Ray tasks (a local "
                             "Ray instance), or everything in this process"),
) -> None:
    """Run the example application end to end, embedded on this machine."""
    from .devstack import run_demo

    _exit(_guard(lambda: asyncio.run(run_demo(samples, console, store, data, ray))))


@app.command("s3")
def s3(
    data: str = typer.Option(".talix/s3", help="data directory"),
    port: int = typer.Option(8333, help="S3 port on 127.0.0.1"),
    bucket: str = typer.Option("talix", help="bucket to create"),
) -> None:
    """Run the embedded S3 server (SeaweedFS) alone, until Ctrl-C."""
    import signal
    import time

    from .s3server import EmbeddedS3

    server = EmbeddedS3(data, bucket=bucket, port=port).start()
    console.print(f"S3 on [bold]{server.endpoint}[/bold], bucket [bold]{bucket}[/bold], "
                  f"data in {server.data_dir}; its keys are in "
                  f"{server.data_dir / 'credentials.json'} (mode 0600):")
    env = server.environment(f"s3://{bucket}/app")
    console.print("  " + " ".join(f"{k}={v}" for k, v in env.items()), soft_wrap=True,
                  markup=False, highlight=False)
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop and server.process is not None and server.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    _exit(0)


@app.command("serve")
def serve_cmd(
    local: bool = typer.Option(False, "--local/--ray", help="uvicorn and the LocalRuntime in "
                               "this process, or Ray Serve replicas joining the RayRuntime"),
    app_ref: str = typer.Option(None, "--app", help="module:function making the runtime "
                                "(default: services.app:build_runtime with --local, "
                                "services.app:build_ray_runtime on Ray)"),
    host: str = typer.Option(None, help="address to listen on (default TALIX_HTTP_HOST, "
                             "127.0.0.1)"),
    port: int = typer.Option(None, help="port (default TALIX_HTTP_PORT, 8000)"),
) -> None:
    """Serve the application's HTTP API (OpenAPI at /docs) until Ctrl-C."""
    from .serve import HttpSettings

    http_settings = _guard(HttpSettings)
    host = host or http_settings.http_host
    port = port or http_settings.http_port
    if local:
        import uvicorn

        from .serve import create_app

        runtime = _guard(lambda: _load_runtime(app_ref or "services.app:build_runtime",
                                               _settings(None)))
        api = _guard(lambda: create_app(runtime, http_settings))
        console.print(f"serving on [bold]http://{host}:{port}[/bold] (docs at /docs) with "
                      "the LocalRuntime; Ctrl-C stops")
        uvicorn.run(api, host=host, port=port, log_level="warning")
        _exit(0)
    import time

    from ray import serve

    from .serve.deployment import serve_deployment

    factory = app_ref or "services.app:build_ray_runtime"
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    application = _guard(lambda: serve_deployment(factory, settings=http_settings))
    import ray

    from .runtime.ray.local import init_local_ray, joins_a_cluster

    if not ray.is_initialized() and not joins_a_cluster({}):
        # Ray on loopback with token authentication, as every Ray talix-ray starts
        init_local_ray(_settings(None).data_dir / "ray")
    serve.start(http_options={"host": host, "port": port})
    serve.run(application, name="talix", route_prefix="/")
    console.print(f"serving on [bold]http://{host}:{port}[/bold] (docs at /docs) with Ray "
                  "Serve; Ctrl-C stops the replicas (the application's actors keep running)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.delete("talix")
    _exit(0)


apikey = typer.Typer(help="API keys for the HTTP API.", no_args_is_help=True)
app.add_typer(apikey, name="apikey")


@apikey.command("create")
def apikey_create(
    name: str = typer.Argument(..., help="who the key is for (recorded in event metadata)"),
    scope: list[str] = typer.Option([], "--scope", help="a scope the key grants (repeat); "
                                    "'*' grants every scope"),
    json_out: bool = typer.Option(False, "--json", help="print the key and entry as JSON"),
) -> None:
    """Make a new API key: prints the key once and the entry for TALIX_API_KEYS (the server
    keeps only its hash)."""
    import json
    import secrets

    from .serve import ApiKey, hash_key

    key = "tlx_" + secrets.token_urlsafe(32)
    entry = _guard(lambda: ApiKey(name=name, hash=hash_key(key), scopes=scope))
    record = {"name": entry.name, "hash": entry.hash, "scopes": entry.scopes}
    if json_out:
        print(json.dumps({"key": key, "entry": record}))
    else:
        console.print(f"API key for [bold]{name}[/bold] (shown once, keep it secret):")
        print(key)
        console.print("add this entry to the JSON list in TALIX_API_KEYS (or the file in "
                      "TALIX_API_KEYS_FILE):")
        print(json.dumps(record))
    _exit(0)


deadletters = typer.Typer(help="Actions given up on after their last attempt.",
                          no_args_is_help=True)
app.add_typer(deadletters, name="deadletters")


@deadletters.command("list")
def deadletters_list(
    store: str = typer.Option(None, help="the application's store (default: TALIX_STORE)"),
) -> None:
    """List the dead letters of the action dispatcher."""
    from rich.table import Table

    from .settings import open_journal

    async def run() -> list[dict[str, object]]:
        journal = open_journal(_settings(store), read_only=True)
        await journal.open()
        try:
            return await journal.list_deadletters("dispatcher")
        finally:
            await journal.close()

    letters = _guard(lambda: asyncio.run(run()))
    table = Table("key", "action", "attempts", "error", title=f"{len(letters)} dead letter(s)")
    for d in letters:
        table.add_row(str(d["key"]), str(d["action"]), str(d["attempts"]), str(d["error"])[:80])
    console.print(table)
    _exit(0)


@deadletters.command("retry")
def deadletters_retry(
    key: str = typer.Argument(..., help="the dead letter's key (see `talix deadletters list`)"),
    app_ref: str = typer.Option("services.app:build_runtime", "--app",
                                help="module:attribute of the runtime (or a function making it)"),
    store: str = typer.Option(None, help="the application's store (default: TALIX_STORE)"),
) -> None:
    """Run a dead-lettered action again; the letter is removed when it succeeds."""
    from .model.errors import TalixError

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
                _exit(1)

    _guard(lambda: asyncio.run(run()))
    console.print(f"retried [bold]{key}[/bold]: done, the dead letter is removed")
    _exit(0)


views_cli = typer.Typer(help="Views: Delta Lake tables projected from the log.",
                        no_args_is_help=True)
app.add_typer(views_cli, name="views")
_STORE = typer.Option(None, "--store", help="the application's store (default: TALIX_STORE)")


def _settings(store: str | None):  # type: ignore[no-untyped-def]
    from .settings import Settings

    return Settings(store=store) if store else Settings()


@views_cli.command("list")
def views_list(store: str = _STORE) -> None:
    """List the views of a store: table version, rows and lag behind the log."""
    from datetime import UTC, datetime

    from rich.table import Table

    from .views import admin

    rows = _guard(lambda: asyncio.run(admin.list_views(_settings(store))))
    table = Table("view", "version", "rows", "lag (segments)", "last commit", "kind",
                  title=f"{len(rows)} view(s)")
    for r in rows:
        when = datetime.fromtimestamp(r["last_commit_ms"] / 1000, UTC).isoformat(
            timespec="seconds") if r["last_commit_ms"] else "-"
        table.add_row(r["view"], str(r["version"]), str(r["rows"]), str(r["lag"]), when,
                      r["description"])
    console.print(table)
    _exit(0)


@views_cli.command("show")
def views_show(
    name: str = typer.Argument(..., help="the view"),
    sql: str = typer.Option(None, "--sql", help="a DuckDB query (the view is a table named "
                            "after it); default: its first rows"),
    limit: int = typer.Option(20, min=1, max=10_000, help="rows to print"),
    store: str = _STORE,
) -> None:
    """Print a view's schema and rows (or the result of a SQL query over it)."""
    from rich.table import Table

    from .views import open as open_view

    def run():  # type: ignore[no-untyped-def]
        view = open_view(name, _settings(store))
        query = sql or f'select * from "{name}" limit {limit}'
        import duckdb

        try:
            return view, view.sql(query).fetch_arrow_table().slice(0, limit)
        except duckdb.Error as exc:  # DuckDB's own message names the problem
            raise ValueError(f"the query failed: {exc}") from exc

    view, data = _guard(run)
    console.print(f"[bold]{view.name}[/bold] version {view.version}: "
                  + ", ".join(f"{f.name} {f.type}" for f in view.schema))
    table = Table(*data.column_names, title=f"{data.num_rows} row(s)")
    for row in data.to_pylist():
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    console.print(table)
    _exit(0)


@views_cli.command("rebuild")
def views_rebuild(
    name: str = typer.Argument(..., help="the view ('events' for the built-in one)"),
    app_ref: str = typer.Option("services.app:build_runtime", "--app",
                                help="module:attribute of the runtime (or a function making it)"),
    store: str = _STORE,
) -> None:
    """Replay the whole log into a new version of a view (after its row model or handlers
    changed); running runners reload from it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from .views import admin

    settings = _settings(store)
    the_app = _guard(lambda: _load_runtime(app_ref, settings).app)
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(f"rebuilding {name} (segments)", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        version = _guard(lambda: asyncio.run(admin.rebuild(settings, the_app, name, progress)))
    console.print(f"rebuilt [bold]{name}[/bold]: table version {version}")
    _exit(0)


def _load_runtime(app_ref: str, settings):  # type: ignore[no-untyped-def]
    """The runtime ``module:attr`` names (a runtime, or a function of the settings making
    one), created; modules of the current directory import, as with ``python -m``."""
    import importlib

    from .engine.runtime import Runtime
    from .model.errors import NotFound

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module, _, attr = app_ref.partition(":")
    target = getattr(importlib.import_module(module), attr or "runtime")
    runtime = target(settings) if callable(target) and not isinstance(target, Runtime) \
        else target
    if not isinstance(runtime, Runtime):
        raise NotFound(f"{app_ref} is not a runtime or a function making one")
    if runtime.app is None:
        runtime.create()
    return runtime


def _guard(fn):  # type: ignore[no-untyped-def]
    """Run ``fn``; a talix or settings error prints a message and exits 2."""
    from pydantic import ValidationError as SettingsError

    from .model.errors import TalixError

    try:
        return fn()
    except (SettingsError, TalixError, ValueError, ImportError, AttributeError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        _exit(2)


def _exit(code: int) -> None:
    """Leave without running interpreter teardown of native thread pools (see README)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    """Entry point of the ``talix`` script."""
    app()


if __name__ == "__main__":
    main()
