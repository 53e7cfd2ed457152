"""`talix dev`, `talix demo` and `talix s3`: the embedded stack on this machine."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import _guard, app, console

DEMO_HELP = ("module:function run against the stack once it answers (uploads, then follows "
             "what it started); '' for none")


@app.command()
def dev(
    once: bool = typer.Option(False, "--once", help="exit when the demo is done (for tests "
                              "and CI)"),
    count: int = typer.Option(12, min=0, max=10_000, help="how many items the demo uploads (the "
                              "example: generated receipts)"),
    seed: int = typer.Option(None, help="the demo's seed (default: a new one each run)"),
    port: int = typer.Option(8000, help="HTTP port on 127.0.0.1"),
    data: Path = typer.Option(Path(".talix"), help="data directory (S3 data, Ray token, "
                              "API key): kept between runs"),
    app_ref: str = typer.Option("services.app:build_ray_runtime", "--app",
                                help="module:function making the runtime in each replica"),
    demo_ref: str = typer.Option("services.demo:run", "--demo", help=DEMO_HELP),
    timeout: float = typer.Option(600, min=1, help="with --once: most seconds to wait"),
) -> None:
    """Run an application end to end on this machine: S3, Ray, the HTTP API on Ray Serve,
    then its demo (the example's: generated receipts uploaded through the API and read by
    OCR). Ctrl-C stops everything."""
    import signal

    from ..dev import ApiClient, DevStack
    from ..dev.demo import DemoSession, load_demo
    from ..dev.feed import FileServer

    def _term(*_: object) -> None:
        raise KeyboardInterrupt

    demo = _guard(lambda: load_demo(demo_ref)) if demo_ref else None
    signal.signal(signal.SIGTERM, _term)
    stack = DevStack(data=data, port=port, factory=app_ref, console=console)
    code = 0
    try:
        _guard(stack.start)
        console.print(f"\nThe API is on [bold]{stack.url}[/bold] (OpenAPI docs: "
                      f"{stack.url}/docs). Development API key (all scopes; kept in "
                      f"{stack.data / 'dev-api-key'}):")
        print(stack.key, flush=True)
        with ApiClient(stack.url, stack.key) as api, \
                FileServer(stack.data / "files") as files:
            _guard(lambda: api.wait_ready(180))
            done = True
            if demo is not None:
                session = DemoSession(url=stack.url, key=stack.key,
                                      key_file=stack.data / "dev-api-key", console=console,
                                      count=count, seed=_seed(seed),
                                      timeout=timeout if once else None, files=files)
                done = _guard(lambda: demo(session)).done
            console.print()
            if once:
                code = 0 if done else 1
                if not done:
                    console.print(f"[red]the demo did not finish in {timeout:.0f} s[/red]")
            else:
                console.print(f"serving on {stack.url}; Ctrl-C stops")
                signal.pause()
    except KeyboardInterrupt:
        console.print("stopping …")
    finally:
        stack.stop()
    raise typer.Exit(code)


@app.command()
def demo(
    count: int = typer.Option(8, min=1, max=10_000, help="how many items the demo uploads (the "
                              "example: generated receipts)"),
    seed: int = typer.Option(None, help="the demo's seed (default: a new one each run)"),
    url: str = typer.Option("http://127.0.0.1:8000", help="the running API"),
    key_file: Path = typer.Option(Path(".talix/dev-api-key"), help="file holding the API "
                                  "key (default: the one `talix dev` made)"),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="follow what the demo started "
                              "until it is done"),
    timeout: float = typer.Option(600, min=1, help="with --wait: most seconds to wait"),
    demo_ref: str = typer.Option("services.demo:run", "--demo",
                                 help="module:function of the demo"),
    json_out: bool = typer.Option(False, "--json", help="print what the demo started (name: "
                                  "id) as JSON, nothing else"),
) -> None:
    """Run an application's demo against a stack that runs already (the example's uploads
    generated receipts as files, ``POST /documents``)."""
    import json

    from rich.console import Console

    from ..dev import ApiClient
    from ..dev.demo import DemoSession, load_demo
    from ..dev.keys import read_key

    run = _guard(lambda: load_demo(demo_ref))
    key = _guard(lambda: read_key(key_file))
    with _guard(lambda: ApiClient(url, key)):  # checks the URL before anything is sent
        pass
    quiet = Console(quiet=True)
    session = DemoSession(url=url, key=key, key_file=key_file,
                          console=quiet if json_out else console, count=count,
                          seed=_seed(seed), timeout=timeout, follow=wait and not json_out)
    outcome = _guard(lambda: run(session))
    if json_out:
        print(json.dumps(outcome.started))
    raise typer.Exit(0 if outcome.done else 1)


def _seed(seed: int | None) -> int:
    import random

    return random.randrange(1 << 30) if seed is None else seed


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


