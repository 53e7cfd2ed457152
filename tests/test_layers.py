"""The layers of DESIGN §2: dependencies point down, optional parts are optional in fact.

Read from the source (``ast``): which talix_ray module imports which, at module level and
inside functions. A cycle between packages, the framework importing the example application,
or a function-level import that hides a cycle (rather than deferring an optional extra) fails
here; and the core, without any extra installed, imports and runs a service.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "talix_ray"

# imported where they are used: the optional extras (views, Ray, OCR, the dev stack, the
# view actors of a RayRuntime without the views extra, the OCR engines, each with its own
# library) and the S3 store (boto3 takes a while to import; only an s3:// store needs it)
DEFERRED = ("talix_ray.views", "talix_ray.runtime.ray", "talix_ray.ocr", "talix_ray.dev",
            "talix_ray.serve.deployment", "talix_ray.s3server", "talix_ray.objectstore.s3",
            "talix_ray.runtime.ray.views", "talix_ray.ocr.rapid", "talix_ray.ocr.tesseract")
# the top layer (command line, development stack) imports lazily to start fast
TOP = ("talix_ray.cli", "talix_ray.dev")
EXTRA_PACKAGES = ("pyarrow", "deltalake", "duckdb", "pandas", "polars", "ray",
                  "rapidocr_onnxruntime", "pypdfium2", "PIL", "onnxruntime", "numpy", "yaml")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Module → the talix_ray modules it imports at module level / inside functions
    (``if TYPE_CHECKING:`` blocks are not imports)."""
    eager: dict[str, set[str]] = defaultdict(set)
    lazy: dict[str, set[str]] = defaultdict(set)
    for name, path in MODULES.items():
        is_package = path.name == "__init__.py"

        def visit(node: ast.AST, in_function: bool, name: str = name,
                  is_package: bool = is_package) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                    continue
                inner = in_function or isinstance(child, (ast.FunctionDef,
                                                          ast.AsyncFunctionDef))
                targets: list[str] = []
                if isinstance(child, ast.ImportFrom):
                    base = child.module or ""
                    if child.level:
                        here = name.split(".")[:None if is_package else -1]
                        here = here[:len(here) - (child.level - 1)]
                        base = ".".join([*here, *([base] if base else [])])
                    for alias in child.names:
                        sub = f"{base}.{alias.name}"
                        targets.append(sub if sub in MODULES else base)
                elif isinstance(child, ast.Import):
                    targets = [a.name for a in child.names]
                for target in targets:
                    if target.startswith("talix_ray") or target.startswith("services"):
                        (lazy if inner else eager)[name].add(target)
                visit(child, inner)

        visit(ast.parse(path.read_text()), False)
    return eager, lazy


EAGER, LAZY = _imports()


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:3] if parts[1:2] == ["runtime"] else parts[:2])


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` if it has one."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_model_imports_nothing_of_the_other_layers():
    for module, targets in {**EAGER, **LAZY}.items():
        if module.startswith("talix_ray.model"):
            outside = {t for t in targets if not t.startswith("talix_ray.model")}
            assert not outside, f"{module} imports {sorted(outside)}"


def test_the_framework_does_not_import_the_example_application():
    for module, targets in {**EAGER, **LAZY}.items():
        found = {t for t in targets if t.startswith("services")}
        assert not found, f"{module} imports {sorted(found)}"


@pytest.mark.parametrize("level", ["module", "package"])
def test_no_import_cycle(level):
    graph: dict[str, set[str]] = defaultdict(set)
    for module, targets in EAGER.items():
        for target in targets:
            a, b = (module, target) if level == "module" else (_package(module),
                                                               _package(target))
            if a != b and b.startswith("talix_ray") and a != "talix_ray":
                graph[a].add(b)
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"


# DESIGN §2, bottom to top: a package imports only packages below it (or itself)
LAYERS = ("talix_ray.model", "talix_ray.objectstore", "talix_ray.journal", "talix_ray.views",
          "talix_ray.engine", "talix_ray.runtime.ray", "talix_ray.serve")


def _upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """The imports of ``edges`` from a layer of DESIGN §2 into a layer above it."""
    return sorted((module, target) for module, targets in edges.items() for target in targets
                  if _package(module) in LAYERS and _package(target) in LAYERS
                  and LAYERS.index(_package(target)) > LAYERS.index(_package(module)))


def test_layers_import_only_the_layers_below_them():
    """Not only no cycle: an import into a higher layer that closes no cycle (the views
    importing the engine, which imports them only inside functions) is refused too."""
    found = _upward({m: EAGER.get(m, set()) | LAZY.get(m, set()) for m in {*EAGER, *LAZY}})
    assert not found, f"imports into a higher layer: {found}"
    assert _upward({"talix_ray.views.schema": {"talix_ray.engine.app"}}) == [
        ("talix_ray.views.schema", "talix_ray.engine.app")]


def test_imports_inside_functions_only_defer_optional_parts():
    """An import inside a function is for an optional extra (views, Ray, OCR) or in the top
    layer (the CLI starts fast); anything else would hide a cycle."""
    hidden = sorted((module, target) for module, targets in LAZY.items()
                    for target in targets
                    if not module.startswith(TOP) and module != "talix_ray"
                    and not _into_deferred(module, target))
    assert not hidden, f"function-level imports of required modules: {hidden}"


def _into_deferred(module: str, target: str) -> bool:
    """Whether ``target`` is a deferred part that ``module`` is not in (inside one part, a
    function-level import would only hide a cycle)."""
    return any(target.startswith(part) and not module.startswith(part) for part in DEFERRED)


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


CORE_ONLY = textwrap.dedent("""
    import sys
    for name in {blocked!r}:
        sys.modules[name] = None  # as if the extra were not installed: importing it fails

    import asyncio
    import tempfile

    from pydantic import BaseModel, Field

    import talix_ray
    from talix_ray import (Context, Event, EventStore, EventType, LocalRuntime, Service,
                           Settings, Testkit, action, http, on_event)
    from talix_ray.extras import installed

    class Opened(BaseModel):
        title: str = Field(min_length=1)

    opened = EventType("TASKS:OPENED", Opened)

    class Task(BaseModel):
        title: str

    def reduce(state: Task | None, event: Event) -> Task | None:
        return Task(title=event.payload.title)

    tasks = EventStore("tasks", [opened], reduce)

    @tasks.command
    def open_task(state: Task | None, input: Opened):
        return opened(title=input.title)

    seen = []

    @action(http.post("/tasks"))
    async def create(input: Opened, ctx: Context) -> None:
        await ctx.run(open_task, "t1", input)

    @action(on_event(opened))
    async def announce(event: Event[Opened], ctx: Context) -> None:
        seen.append(event.payload.title)

    service = Service("tasks", stores=[tasks], actions=[create, announce])

    async def main() -> None:
        store = "file://" + tempfile.mkdtemp()
        runtime = LocalRuntime.from_settings(Settings(store=store)).add(service)
        async with runtime.create():
            await runtime.call(create, {{"title": "write"}})
            await runtime.settle()
            task = await runtime.get_aggregate(tasks, "t1")
            assert task.state == Task(title="write") and task.version == 1, task
        assert seen == ["write"], seen

    asyncio.run(main())
    with Testkit(service) as kit:
        kit.given().when(open_task, "t2", Opened(title="x")).then_events(opened)
    from talix_ray.serve import create_app  # the HTTP face is core too
    assert not installed("views") and not installed("ray")
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in {blocked!r}
                    and sys.modules[m] is not None)
    assert not loaded, loaded
    print("core ok")
""")


def test_the_core_runs_a_service_without_any_extra(tmp_path):
    script = tmp_path / "core_only.py"
    script.write_text(CORE_ONLY.format(blocked=list(EXTRA_PACKAGES)))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert "core ok" in done.stdout


VIEWS_WITHOUT_EXTRA = textwrap.dedent("""
    import sys
    for name in ("pyarrow", "deltalake", "duckdb"):
        sys.modules[name] = None
    from talix_ray import LocalRuntime, ConfigurationError
    from tests.views_domain import service
    try:
        LocalRuntime(views=True).add(service).create()
        import asyncio
        asyncio.run(LocalRuntime(views=True).add(service).start())
    except ConfigurationError as exc:
        print("error:", exc)
""")


def test_views_without_their_extra_say_which_extra_to_install(tmp_path):
    script = tmp_path / "views_without.py"
    script.write_text(VIEWS_WITHOUT_EXTRA)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert "pip install 'talix-ray[views]'" in done.stdout, done.stdout


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}


RAY_VIEWS_WITHOUT_EXTRA = textwrap.dedent("""
    import sys
    for name in ("pyarrow", "deltalake", "duckdb"):
        sys.modules[name] = None
    import asyncio, tempfile
    import ray
    from talix_ray import ConfigurationError
    from talix_ray.runtime.ray import RayRuntime
    from tests.views_domain import service

    async def main():
        rt = RayRuntime("file://" + tempfile.mkdtemp(), app="noviews", partitions=1,
                        shards=1, dispatch=False,
                        ray_init={"num_cpus": 1}).add(service)
        try:
            await rt.start()
        except ConfigurationError as exc:
            print("error:", exc)
        print("ray started:", ray.is_initialized())
        if ray.is_initialized():
            ray.shutdown()
    asyncio.run(main())
""")


def test_a_ray_runtime_without_the_views_extra_fails_before_starting_ray(tmp_path):
    """Projections declared, the views extra missing: the RayRuntime says which extra to
    install before it starts a local Ray (which its failed start would leave running)."""
    script = tmp_path / "ray_views_without.py"
    script.write_text(RAY_VIEWS_WITHOUT_EXTRA)
    # were it to start one, a talix-ray local Ray (loopback, a token in tmp_path), not the
    # session's and not one with Ray's defaults
    env = {k: v for k, v in _env().items() if not k.startswith(("RAY_ADDRESS", "RAY_AUTH"))}
    env["TALIX_DATA_DIR"] = str(tmp_path / "data")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "pip install 'talix-ray[views]'" in done.stdout, done.stdout
    assert "ray started: False" in done.stdout, done.stdout
