"""`talix deploy`: the Serve config of the application on a Ray cluster."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from .common import _guard, app, console


@app.command("deploy")
def deploy(
    out: Path = typer.Option(Path("serve_config.yaml"), "--out", "-o",
                             help="where to write the Serve config"),
    factory: str = typer.Option("services.app:build_ray_runtime", "--factory",
                                help="module:function making the RayRuntime"),
    store: str = typer.Option(None, "--store", help="s3://bucket/prefix (default TALIX_STORE)"),
    app_name: str = typer.Option(None, "--app-name", help="application name (TALIX_APP)"),
    partitions: int = typer.Option(None, "--partitions", min=1, max=4096,
                                   help="partitions of a new store (TALIX_PARTITIONS)"),
    replicas: int = typer.Option(None, "--replicas", min=1, max=1024,
                                 help="HTTP replicas (TALIX_SERVE_NUM_REPLICAS)"),
    max_replicas: int = typer.Option(None, "--max-replicas", min=1, max=1024,
                                     help="autoscale up to this (TALIX_SERVE_MAX_REPLICAS)"),
    host: str = typer.Option("0.0.0.0", "--host", help="address the Serve proxies bind"),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="the proxies' port"),
    head_only: bool = typer.Option(False, "--head-only", help="one HTTP proxy, on the head "
                                   "node (default: one on every node)"),
    json_out: bool = typer.Option(False, "--json", help="print the config as JSON instead "
                                  "of writing YAML"),
) -> None:
    """Write the Serve config (for `serve deploy`) of the application on a Ray cluster: the
    replicas' TALIX_* settings from this environment and the options, secrets left out."""
    import yaml

    from ..serve.config import serve_config, split_environment

    env, secrets = split_environment(os.environ)
    for name, value in (("TALIX_STORE", store), ("TALIX_APP", app_name),
                        ("TALIX_PARTITIONS", partitions), ("TALIX_SERVE_NUM_REPLICAS", replicas),
                        ("TALIX_SERVE_MAX_REPLICAS", max_replicas)):
        if value is not None:
            env[name] = str(value)
    config = _guard(lambda: serve_config(env, factory=factory, host=host, port=port,
                                         proxy_location="HeadOnly" if head_only
                                         else "EveryNode"))
    if json_out:
        print(json.dumps(config))
        return
    header = ("# Written by `talix deploy`; deploy it with `serve deploy " + str(out) + "`.\n"
              "# Secrets (S3 keys, JWT secret) are not in here: the nodes' environment or\n"
              "# the instance profile provides them.\n")

    def write() -> None:
        try:
            out.write_text(header + yaml.safe_dump(config, sort_keys=False))
        except OSError as exc:
            raise ValueError(f"cannot write {out}: {exc.strerror}") from None

    _guard(write)
    console.print(f"wrote [bold]{out}[/bold] (application {config['applications'][0]['name']},"
                  f" store {env['TALIX_STORE']}); next: serve deploy {out}")
    if secrets:
        console.print("left out (secrets, set them on the nodes): " + ", ".join(secrets))
