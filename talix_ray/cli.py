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
) -> None:
    """Run the example application end to end, embedded on this machine."""
    from pydantic import ValidationError as SettingsError

    from .devstack import run_demo
    from .model.errors import TalixError

    try:
        code = asyncio.run(run_demo(samples, console, store, data))
    except (SettingsError, TalixError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        code = 2
    _exit(code)


@app.command("s3")
def s3(
    data: str = typer.Option(".talix/s3", help="data directory"),
    port: int = typer.Option(8333, help="S3 port on 127.0.0.1"),
    bucket: str = typer.Option("talix", help="bucket to create"),
) -> None:
    """Run the embedded S3 server (SeaweedFS) alone, until Ctrl-C."""
    import signal
    import time

    from .s3server import ACCESS_KEY, SECRET_KEY, EmbeddedS3

    server = EmbeddedS3(data, bucket=bucket, port=port).start()
    console.print(f"S3 on [bold]{server.endpoint}[/bold], bucket [bold]{bucket}[/bold], "
                  f"data in {server.data_dir}")
    console.print(f"  TALIX_STORE=s3://{bucket}/app TALIX_S3_ENDPOINT={server.endpoint} "
                  f"TALIX_S3_ACCESS_KEY={ACCESS_KEY} TALIX_S3_SECRET_KEY={SECRET_KEY}")
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
