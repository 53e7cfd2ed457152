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


async def test_the_readme_views_example_runs_as_written(tmp_path):
    """The Settings chosen in code, views.catch_up() and the Python form of `talix views
    rebuild` (on the service of the first example)."""
    import talix_ray
    import talix_ray.views

    assert talix_ray.Settings is talix_ray.settings.Settings  # exported, as the README uses it
    service_src = _blocks()[0]
    (views_src,) = [b for b in _blocks() if "views.catch_up()" in b]
    assert 'Settings(store="file:///tmp/talix-tasks")' in views_src
    views_src = views_src.replace("file:///tmp/talix-tasks", f"file://{tmp_path}/tasks")
    ns: dict[str, object] = {"__name__": "readme_views_example"}
    exec(compile(service_src, "README:service", "exec"), ns)
    body = textwrap.indent(views_src, "    ")
    exec(compile(f"async def _run():\n{body}\n    return settings, version\n", "README:views",
                 "exec"), ns)
    settings, version = await ns["_run"]()  # type: ignore[operator]
    assert version >= 1
    rows = talix_ray.views.open("events", settings).to_arrow().to_pylist()
    assert [(r["store"], r["aggregate_id"]) for r in rows] == [("tasks", "t1")]
