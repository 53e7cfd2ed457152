"""Helpers shared by the benchmarks: results files and the closing line."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def write_results(name: str, data: dict[str, Any], summary: dict[str, float]) -> None:
    """Write ``bench/results/NAME.json`` and print the ``NAME: key=value …`` last line."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "machine": {"python": platform.python_version(), "cpu": platform.processor(),
                           "system": platform.platform()},
               "summary": summary, **data}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"{name}: " + " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in summary.items()), flush=True)


def best_of(fn: Any, repeat: int) -> float:
    """The fastest of ``repeat`` timed runs of ``fn()`` (seconds)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best
