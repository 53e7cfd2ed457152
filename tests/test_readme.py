"""The README's service example runs as written."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


async def test_the_readme_service_runs_as_written(capsys):
    service_src, run_src, test_src = _blocks()[:3]
    ns: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(service_src, "README:service", "exec"), ns)
    body = textwrap.indent(run_src, "    ")
    exec(compile(f"async def _run():\n{body}\n    return task\n", "README:run", "exec"), ns)
    task = await ns["_run"]()  # type: ignore[operator]
    assert task.state.title == "write the README" and task.version == 1
    assert "new task: write the README" in capsys.readouterr().out
    exec(compile(test_src, "README:test", "exec"), ns)
    ns["test_a_task_opens_once"]()  # type: ignore[operator]
    ns["test_creating_a_task_over_the_action"]()  # type: ignore[operator]
