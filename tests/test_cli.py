"""The command line: the main job end to end, as `make dev` runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def talix(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "talix_ray.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={"PATH": str(Path(sys.executable).parent), "COLUMNS": "200",
                               "PYTHONPATH": str(ROOT),
                               "RAY_USAGE_STATS_ENABLED": "0"})


def test_dev_runs_the_example_on_a_file_store_and_keeps_it(tmp_path):
    store = f"file://{tmp_path}/events"
    first = talix("dev", "--store", store)
    assert first.returncode == 0, first.stderr
    assert "Blue Bottle Coffee" in first.stdout and "44.00 GBP" in first.stdout
    assert "4 document(s)" in first.stdout
    second = talix("dev", "--store", store)
    assert second.returncode == 0 and "8 document(s)" in second.stdout
    assert list((tmp_path / "events" / "files").iterdir())  # the uploads, as objects


def test_dev_reports_bad_options(tmp_path):
    r = talix("dev", "--store", "ftp://x")
    assert r.returncode == 2 and "memory://, file:///path or s3://" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr
    r = talix("dev", "--samples", str(tmp_path))
    assert r.returncode == 2 and "no sample documents" in r.stdout


async def test_deadletters_list_and_retry(tmp_path):
    from talix_ray.settings import Settings

    from .cli_app import build
    from .domain import Add, Book, add, book

    store = f"file://{tmp_path}/events"
    async with build(Settings(store=store)) as rt:
        await rt.run(add, "doomed-9", Add(amount=1))
        await rt.settle(30)
    listed = talix("deadletters", "list", "--store", store)
    assert listed.returncode == 0 and "1 dead letter(s)" in listed.stdout
    key = "mirror_to_ledger@counters@doomed-9@1"
    assert key in listed.stdout
    again = talix("deadletters", "retry", key, "--app", "tests.cli_app:build", "--store", store)
    assert again.returncode == 1 and "failed again" in again.stdout
    async with build(Settings(store=store)) as rt:
        await rt.run(book, "heal-doomed-9", Book(source="fix", amount=0))
    fixed = talix("deadletters", "retry", key, "--app", "tests.cli_app:build", "--store", store)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "0 dead letter(s)" in talix("deadletters", "list", "--store", store).stdout
    missing = talix("deadletters", "retry", "nope", "--app", "tests.cli_app:build",
                    "--store", store)
    assert missing.returncode == 2 and "no dead letter 'nope'" in missing.stdout
