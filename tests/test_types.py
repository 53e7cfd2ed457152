"""The public API's types are checked: a command knows its input model, so mypy rejects
``runtime.run``, ``ctx.run`` and ``Testkit.when`` with another one, and reads (``load_state``,
``ctx.load``, ``get_aggregate``, ``Testkit.state``) give the store's state type; the README's
examples type-check as written, strictly (the framework and services/ are checked by
``make lint``)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"


def _mypy(tmp_path: Path, source: str) -> list[str]:
    """mypy's error lines for ``source`` (a module of its own), with the project's settings
    but untyped functions allowed, as a user's code may have them."""
    module = tmp_path / "checked.py"
    module.write_text(source)
    r = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                        "--allow-untyped-defs", "--allow-incomplete-defs", "--no-error-summary",
                        "--cache-dir", str(ROOT / ".mypy_cache"), str(module)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 1), r.stdout + r.stderr
    return [line for line in r.stdout.splitlines() if ": error:" in line]


def _readme_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_readme_examples_type_check(tmp_path):
    service, run, test = _readme_blocks()[:3]
    source = (service + "\n\nasync def _run() -> None:\n    from talix_ray import LocalRuntime\n"
              + "\n".join("    " + line for line in run.splitlines()[2:]) + "\n\n" + test)
    assert _mypy(tmp_path, source) == []


def test_a_command_checks_its_input_type(tmp_path):
    service = _readme_blocks()[0]
    wrong = service + '''

from talix_ray import LocalRuntime, Testkit


@tasks.command(name="reopen_task")
def reopen_task(state: Task | None, input: OpenTask) -> None:
    return None


async def _runs(runtime: LocalRuntime, ctx: Context) -> None:
    await runtime.run(open_task, "t1", OpenTask(title="ok"))
    await runtime.run(open_task, "t1", {"title": "ok"})
    await runtime.run(open_task, "t1", TaskOpened(title="wrong"))
    await ctx.run(open_task, "t1", TaskOpened(title="wrong"))
    Testkit(service).given().when(open_task, "t1", TaskOpened(title="wrong"))
    state: Task | None = await runtime.load_state(tasks, "t1")
    count: int = await runtime.load_state(tasks, "t1")
    loaded: Task | None = await ctx.load(tasks, "t1")
    count_loaded: int = await ctx.load(tasks, "t1")
    read: Task | None = (await runtime.get_aggregate(tasks, "t1")).state
    count_read: int = (await runtime.get_aggregate(tasks, "t1")).state
    seen: Task | None = Testkit(service).state(tasks, "t1")
    count_seen: int = Testkit(service).state(tasks, "t1")
    await runtime.run(reopen_task, "t1", TaskOpened(title="wrong"))
    count_named: int = await runtime.load_state(reopen_task.store, "t1")
'''
    errors = _mypy(tmp_path, wrong)
    found: dict[int, list[str]] = {}
    for e in errors:
        found.setdefault(int(e.split(":")[1]), []).append(e)
    source = wrong.splitlines()
    rejected = [n for n, line in enumerate(source, 1) if 'TaskOpened(title="wrong")' in line]
    miscount = [n for n, line in enumerate(source, 1) if line.strip().startswith("count")]
    assert len(rejected) == 4 and len(miscount) == 5, (rejected, miscount)
    assert sorted(found) == sorted(rejected + miscount), errors
    for n in rejected:  # the input type must be the command's
        assert any('type parameter "In"' in e for e in found[n]), found[n]
    for n in miscount:  # a read gives the store's state type (Task | None), not Any
        assert any("Task" in e and "int" in e for e in found[n]), found[n]
