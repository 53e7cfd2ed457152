"""Processes that did Delta Lake work exit the ordinary way, with their own exit code.

``deltalake`` once aborted the interpreter at exit (delta-io/delta-rs#2184); the ``talix`` CLI
and the test session used to leave with ``os._exit`` because of it. They no longer do: these
tests fail if the abort comes back (exit code 134 or -6 instead of the process's own).
The CLI's exit codes (0, 1, 2) after Delta work are checked in test_cli.py and
test_cli_ops.py; a local Ray in the process is covered by ``talix dev --once``
(test_showcase.py) and by ``python -m tests.exit_probe ray ray-open``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .exit_probe import ABORT_SIGNS, child_env, run_child

ROOT = Path(__file__).parent.parent


def test_a_pytest_session_after_delta_work_exits_with_pytest_s_status(tmp_path):
    """No plugin ends the session: pytest's status (0 passed, 1 failed) is the exit code,
    after Delta writes, reads and a DuckDB query in the session, every time."""
    (tmp_path / "test_delta.py").write_text(
        "import os\n"
        "import deltalake, duckdb, pyarrow as pa\n"
        "def test_write(tmp_path):\n"
        "    deltalake.write_deltalake(str(tmp_path / 't'), pa.table({'a': [1, 2]}))\n"
        "    table = deltalake.DeltaTable(str(tmp_path / 't'))\n"
        "    con = duckdb.connect()\n"
        "    con.register('t', table.to_pyarrow_dataset())\n"
        "    assert con.sql('select sum(a) from t').fetchall() == [(3,)]\n"
        "    assert os.environ.get('FAIL') is None\n")
    for fail, code in ((None, 0), ("1", 1)):
        env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(ROOT)}
        if fail:
            env["FAIL"] = fail
        for _ in range(3):
            r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                str(tmp_path / "test_delta.py")], cwd=tmp_path,
                               capture_output=True, text=True, timeout=120, env=env)
            assert r.returncode == code, r.stdout + r.stderr
            assert ("1 passed" if code == 0 else "1 failed") in r.stdout
            assert not any(sign in r.stderr for sign in ABORT_SIGNS), r.stderr


@pytest.mark.parametrize("store", ["file", "s3"])
def test_view_runners_on_delta_then_a_normal_exit(store, request):
    """A LocalRuntime whose view runners write Delta tables (on a directory, on S3), read
    back with DuckDB, then the interpreter's whole teardown: exit code 0, no abort."""
    s3 = request.getfixturevalue("s3_server") if store == "s3" else None
    for _ in range(2):
        code, _took, signs = run_child("views", store, child_env(s3))
        assert (code, signs) == (0, ""), signs
