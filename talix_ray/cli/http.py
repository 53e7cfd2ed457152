"""`talix serve` and `talix apikey`: the HTTP API."""

from __future__ import annotations

import os
import sys

import typer

from .common import APP_HELP, _guard, _load_runtime, _settings, app, console


@app.command("serve")
def serve_cmd(
    local: bool = typer.Option(False, "--local/--ray", help="uvicorn and the LocalRuntime in "
                               "this process, or Ray Serve replicas joining the RayRuntime"),
    app_ref: str = typer.Option(None, "--app", help="with --local, " + APP_HELP + " (default "
                                "services.app:build_runtime); on Ray Serve, module:function "
                                "called with no arguments in each replica (default "
                                "services.app:build_ray_runtime)"),
    host: str = typer.Option(None, help="address to listen on (default TALIX_HTTP_HOST, "
                             "127.0.0.1)"),
    port: int = typer.Option(None, help="port (default TALIX_HTTP_PORT, 8000)"),
) -> None:
    """Serve the application's HTTP API (OpenAPI at /docs) until Ctrl-C."""
    from ..serve import HttpSettings

    http_settings = _guard(HttpSettings)
    host = host or http_settings.http_host
    port = port or http_settings.http_port
    if local:
        import uvicorn

        from ..serve import create_app

        runtime = _guard(lambda: _load_runtime(app_ref or "services.app:build_runtime",
                                               _settings(None)))
        api = _guard(lambda: create_app(runtime, http_settings))
        console.print(f"serving on [bold]http://{host}:{port}[/bold] (docs at /docs) with "
                      "the LocalRuntime; Ctrl-C stops")
        uvicorn.run(api, host=host, port=port, log_level="warning")
        return
    import time

    from ray import serve

    from ..serve.deployment import serve_deployment

    factory = app_ref or "services.app:build_ray_runtime"
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    application = _guard(lambda: serve_deployment(factory, settings=http_settings))
    import ray

    from ..runtime.ray.local import init_local_ray, joins_a_cluster

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

    from ..serve import ApiKey, hash_key

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


