"""`talix dev` and `talix s3`: the embedded stack on this machine."""

from __future__ import annotations

import asyncio

import typer

from .common import _exit, _guard, app, console


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
    from ..devstack import run_demo

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

    from ..s3server import EmbeddedS3

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


