"""The command line against seeded stores (the main job, `talix dev`, is in test_showcase)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def talix(*args: str, timeout: float = 120,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "talix_ray.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={"PATH": str(Path(sys.executable).parent), "COLUMNS": "200",
                               "PYTHONPATH": str(ROOT),
                               "RAY_USAGE_STATS_ENABLED": "0", **(env or {})})


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


def test_only_expected_errors_become_one_line_messages(tmp_path):
    """A bad ``--app`` is the user's error (one line, exit 2, saying what is wrong); a defect
    in the code it runs (here an AttributeError in the app's factory) keeps its traceback."""
    store = f"file://{tmp_path}/events"
    for ref, message in (("tests.nosuch:build", "cannot import module 'tests.nosuch'"),
                         ("tests.cli_app:nosuch", "module 'tests.cli_app' has no attribute "
                                                  "'nosuch'")):
        r = talix("deadletters", "retry", "k", "--app", ref, "--store", store)
        assert r.returncode == 2, r.stdout + r.stderr
        lines = [x for x in (r.stdout + r.stderr).splitlines() if x.strip()]
        assert len(lines) == 1 and message in lines[0], lines
    r = talix("deadletters", "retry", "k", "--app", "tests.cli_app:buggy", "--store", store)
    assert r.returncode not in (0, 2), r.stdout + r.stderr
    assert "Traceback" in r.stderr and "no_such_setting" in r.stderr, r.stdout + r.stderr


def test_app_help_says_what_an_app_may_be():
    for command in (("views", "rebuild"), ("deadletters", "retry"), ("serve",)):
        r = talix(*command, "--help", env={"COLUMNS": "400"})
        assert r.returncode == 0, r.stderr
        text = " ".join(r.stdout.replace("│", " ").split())
        assert "a runtime, or a function taking the Settings" in text, text


async def test_views_list_show_and_rebuild(tmp_path):
    from talix_ray.settings import Settings

    from .cli_app import bank
    from .views_domain import Deposit, Open, deposit, open_account

    store = f"file://{tmp_path}/events"
    runtime = bank(Settings(store=store))
    runtime._view_options = {"linger": 0.02}
    async with runtime:
        for i in range(3):
            await runtime.run(open_account, f"a{i}", Open(owner="ann"))
        last = await runtime.run(deposit, "a1", Deposit(amount="2.50"))
        await runtime.views.wait_for(last)
    listed = talix("views", "list", "--store", store)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "4 view(s)" in listed.stdout
    line = next(x for x in listed.stdout.splitlines() if "balances" in x)
    assert line.split("│")[3].strip() == "3" and line.split("│")[4].strip() == "0"  # rows, lag
    shown = talix("views", "show", "balances", "--store", store, "--sql",
                  "select owner, sum(balance) as total from balances group by owner")
    assert shown.returncode == 0 and "ann" in shown.stdout and "2.50" in shown.stdout
    rebuilt = talix("views", "rebuild", "balances", "--app", "tests.cli_app:bank",
                    "--store", store)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "rebuilt balances: table version" in rebuilt.stdout
    again = talix("views", "show", "balances", "--store", store)
    assert again.returncode == 0 and "3 row(s)" in again.stdout
    for bad, message in ((("views", "show", "nope", "--store", store), "no view 'nope'"),
                         (("views", "show", "balances", "--store", store, "--sql", "selec"),
                          "the query failed"),
                         (("views", "rebuild", "nope", "--app", "tests.cli_app:bank",
                           "--store", store), "no view 'nope' in the application"),
                         (("views", "list", "--store", "memory://"), "memory://")):
        r = talix(*bad)
        assert r.returncode == 2 and message in r.stdout, r.stdout + r.stderr
        assert "Traceback" not in r.stdout + r.stderr


def test_a_demo_of_the_current_directory_imports_from_the_installed_command(tmp_path):
    """``--demo mydemo:run`` finds a module of the current directory, as ``--app`` does, also
    from the installed ``talix`` script (whose sys.path has its own directory, not the
    current one, unlike ``python -m``)."""
    (tmp_path / "mydemo.py").write_text(
        "from talix_ray.dev.demo import DemoOutcome\n"
        "def run(session):\n"
        "    print('my demo ran', session.count)\n"
        "    return DemoOutcome(True, {'a': 'b'})\n")
    (tmp_path / "key").write_text("a-key")
    script = Path(sys.executable).parent / "talix"
    r = subprocess.run([str(script), "demo", "--demo", "mydemo:run", "--key-file", "key",
                        "--count", "3", "--url", "http://127.0.0.1:9"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120,
                       env={"PATH": str(Path(sys.executable).parent), "COLUMNS": "200",
                            "RAY_USAGE_STATS_ENABLED": "0"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "my demo ran 3" in r.stdout


def test_dev_and_demo_name_their_demo(tmp_path):
    """The demo is a parameter (``--demo module:function``), checked before anything starts:
    a bad one is one line and exit 2, and no stack was started for it."""
    for command in (("dev", "--once", "--data", str(tmp_path / "dev")),
                    ("demo", "--key-file", str(tmp_path / "none"))):
        for ref, message in (("tests.nosuch:run", "cannot import module 'tests.nosuch'"),
                             ("services.demo:nosuch", "has no attribute 'nosuch'"),
                             ("services.demo:ExpensesApi.x", "has no attribute"),
                             ("nocolon", "use 'module:attribute'")):
            r = talix(*command, "--demo", ref)
            assert r.returncode == 2, r.stdout + r.stderr
            assert message in r.stdout and "Traceback" not in r.stdout + r.stderr, r.stdout
        assert not (tmp_path / "dev").exists()  # nothing was started
