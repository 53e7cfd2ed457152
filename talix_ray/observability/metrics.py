"""Metrics of talix-ray: one set of names, two backends.

In a process Ray started (shard, dispatcher, executor and view actors, action tasks, Serve
replicas) every instrument records through :mod:`ray.util.metrics`, so the numbers of every
process show up on the Prometheus endpoint of its Ray node (``ray start
--metrics-export-port``); Ray puts ``ray_`` in front of each name. Anywhere else (the
LocalRuntime, a driver, the CLI) they go to :mod:`prometheus_client`'s default registry under
the same names: :func:`serve_metrics` exposes it, :func:`exposition` renders it.

Recording is meant for hot paths: an instrument keeps one bound child per label values, so a
call is a dict lookup and an addition in this process (prometheus backend, read when scraped)
or Ray's own recording (~2 µs, next to a command that takes milliseconds on Ray). Every
series carries ``app`` (the application, :func:`set_app`, default ``TALIX_APP`` or
``talix``).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "ACTION_RETRIES",
    "ACTION_RUNS",
    "COMMANDS",
    "COMMAND_SECONDS",
    "CONSUMER_LAG_SECONDS",
    "CONSUMER_LAG_SEGMENTS",
    "DEADLETTERS",
    "HTTP_REQUESTS",
    "HTTP_SECONDS",
    "SEGMENT_BYTES",
    "SEGMENT_COMMITS",
    "STORE_REQUESTS",
    "Counter",
    "Gauge",
    "Histogram",
    "LagTracker",
    "backend",
    "exposition",
    "serve_metrics",
    "set_app",
    "use_backend",
]

_lock = threading.Lock()
_backend: str | None = None
_app = os.environ.get("TALIX_APP") or "talix"
_instruments: list[_Instrument] = []


def _in_ray_worker() -> bool:
    """Whether this process was started by Ray (an actor, a task, a Serve replica)."""
    ray = sys.modules.get("ray")
    if ray is None:
        return False
    try:
        worker = ray._private.worker.global_worker
        return bool(ray.is_initialized() and worker.mode == ray.WORKER_MODE)
    except Exception:
        return False


def backend() -> str:
    """``"ray"`` or ``"prometheus"``: decided once per process, at the first recording."""
    global _backend
    if _backend is None:
        with _lock:
            if _backend is None:
                _backend = "ray" if _in_ray_worker() else "prometheus"
    return _backend


def use_backend(name: str | None) -> None:
    """Force a backend (``"ray"``, ``"prometheus"``) or, with ``None``, decide again at the next
    recording; instruments rebind their children."""
    global _backend
    if name not in (None, "ray", "prometheus"):
        raise ValueError("a metrics backend is 'ray' or 'prometheus'")
    with _lock:
        _backend = name
        for inst in _instruments:
            inst._reset()


def set_app(name: str) -> None:
    """The ``app`` label of every series this process records from now on."""
    global _app
    if name != _app:
        with _lock:
            _app = name
            for inst in _instruments:
                inst._reset()


class _Cell:
    """One series of a counter or gauge in this process."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def add(self, amount: float) -> None:
        self.value += amount

    def set(self, value: float) -> None:
        self.value = value


class _Buckets:
    """One series of a histogram in this process: a count per bucket and the sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class _Instrument:
    """A named instrument; ``labels`` are the label names besides ``app``.

    With the prometheus backend a series is a plain cell of this process, read by one
    collector when Prometheus scrapes (recording costs a dict lookup and an addition; it is
    meant for one event loop's thread — concurrent threads may rarely lose an increment).
    With the Ray backend a series is a Ray metric bound to its tags.
    """

    kind = ""
    buckets: tuple[float, ...]  # a histogram's bucket bounds (set by Histogram)

    def __init__(self, name: str, doc: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.doc = doc
        self.labels = tuple(labels)
        self._children: dict[tuple[str, ...], Callable[[float], None]] = {}
        self._cells: dict[tuple[str, ...], Any] = {}
        self._ray: Any = None
        with _lock:
            _instruments.append(self)

    def _reset(self) -> None:
        self._children = {}

    def _bind(self, values: tuple[str, ...]) -> Callable[[float], None]:
        if len(values) != len(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}, got {values}")
        if backend() == "ray":
            child = self._ray_child(dict(zip(("app", *self.labels), (_app, *values),
                                             strict=True)))
        else:
            _ensure_collector()
            key = (_app, *values)
            cell = self._cells.get(key)
            if cell is None:
                cell = self._cells[key] = self._new_cell()
            child = cell.observe if self.kind == "histogram" else \
                cell.set if self.kind == "gauge" else cell.add
        self._children[values] = child
        return child

    def _new_cell(self) -> Any:
        return _Cell()

    def _ray_instrument(self) -> Any:
        raise NotImplementedError

    def _ray_child(self, tags: dict[str, str]) -> Callable[[float], None]:
        if self._ray is None:
            self._ray = self._ray_instrument()
        inst = self._ray
        method = inst.set if self.kind == "gauge" else \
            inst.observe if self.kind == "histogram" else inst.inc
        return lambda value: method(value, tags)

    def samples(self) -> dict[tuple[str, ...], Any]:
        """This process's series (prometheus backend): label values → value (a histogram's:
        ``(bucket counts, sum)``)."""
        if self.kind == "histogram":
            return {k: (list(c.counts), c.sum) for k, c in list(self._cells.items())}
        return {k: c.value for k, c in list(self._cells.items())}

    def _family(self) -> Any:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        names = ["app", *self.labels]
        if self.kind == "counter":
            fam: Any = CounterMetricFamily(self.name, self.doc, labels=names)
            for key, value in self.samples().items():
                fam.add_metric(list(key), value)
        elif self.kind == "gauge":
            fam = GaugeMetricFamily(self.name, self.doc, labels=names)
            for key, value in self.samples().items():
                fam.add_metric(list(key), value)
        else:
            fam = HistogramMetricFamily(self.name, self.doc, labels=names)
            bounds = [*(repr(float(b)) for b in self.buckets), "+Inf"]
            for key, (counts, total) in self.samples().items():
                running, cumulative = 0, []
                for bound, n in zip(bounds, counts, strict=True):
                    running += n
                    cumulative.append((bound, running))
                fam.add_metric(list(key), cumulative, total)
        return fam


class Counter(_Instrument):
    """A monotonic count (``name_total`` on Prometheus)."""

    kind = "counter"

    def inc(self, *values: str, amount: float = 1.0) -> None:
        """Add ``amount`` to the series of these label values."""
        child = self._children.get(values)
        if child is None:
            child = self._bind(values)
        child(amount)

    def _ray_instrument(self) -> Any:
        from ray.util.metrics import Counter as RayCounter

        return RayCounter(self.name, self.doc, tag_keys=("app", *self.labels))


class Gauge(_Instrument):
    """A value that goes up and down (the last one set)."""

    kind = "gauge"

    def set(self, *values: str, value: float) -> None:
        """Set the series of these label values."""
        child = self._children.get(values)
        if child is None:
            child = self._bind(values)
        child(value)

    def _ray_instrument(self) -> Any:
        from ray.util.metrics import Gauge as RayGauge

        return RayGauge(self.name, self.doc, tag_keys=("app", *self.labels))


class Histogram(_Instrument):
    """A distribution in fixed buckets (``_bucket``, ``_sum``, ``_count``)."""

    kind = "histogram"

    def __init__(self, name: str, doc: str, labels: Sequence[str] = (), *,
                 buckets: Sequence[float]) -> None:
        super().__init__(name, doc, labels)
        self.buckets = tuple(float(b) for b in buckets)

    def observe(self, *values: str, value: float) -> None:
        """Record one observation in the series of these label values."""
        child = self._children.get(values)
        if child is None:
            child = self._bind(values)
        child(value)

    def _new_cell(self) -> Any:
        return _Buckets(self.buckets)

    def _ray_instrument(self) -> Any:
        from ray.util.metrics import Histogram as RayHistogram

        return RayHistogram(self.name, self.doc, boundaries=list(self.buckets),
                            tag_keys=("app", *self.labels))


class _Collector:
    """Hands every instrument's series to prometheus_client when it is scraped."""

    def collect(self) -> Any:
        for inst in list(_instruments):
            yield inst._family()


_collector: _Collector | None = None


def _ensure_collector() -> None:
    global _collector
    if _collector is None:
        with _lock:
            if _collector is None:
                import prometheus_client

                _collector = _Collector()
                prometheus_client.REGISTRY.register(_collector)


class LagTracker:
    """Sets a consumer's two lag gauges: segments behind and seconds it has been behind
    (since it last saw itself caught up; 0 when it is). No I/O: the caller counts the
    segments from what it knows."""

    def __init__(self, consumer: str) -> None:
        self.consumer = consumer
        self.behind_since: float | None = None

    def update(self, segments: int) -> None:
        """Record ``segments`` not yet processed."""
        now = time.monotonic()
        if segments > 0:
            if self.behind_since is None:
                self.behind_since = now
            seconds = now - self.behind_since
        else:
            self.behind_since = None
            seconds = 0.0
        CONSUMER_LAG_SEGMENTS.set(self.consumer, value=segments)
        CONSUMER_LAG_SECONDS.set(self.consumer, value=seconds)


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Expose this process's metrics (the prometheus_client backend) on
    ``http://host:port/metrics`` from a daemon thread."""
    import prometheus_client

    _ensure_collector()
    prometheus_client.start_http_server(port, addr=host)


def exposition() -> bytes:
    """This process's metrics in the Prometheus text format (prometheus_client backend)."""
    import prometheus_client

    _ensure_collector()
    return prometheus_client.generate_latest()


_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            10.0, 30.0)

COMMANDS = Counter("talix_commands", "Commands run, by event store and outcome (ok, "
                   "duplicate, rejected, conflict, invalid, error).", ("store", "outcome"))
COMMAND_SECONDS = Histogram("talix_command_seconds", "Time from a command's turn on its "
                            "aggregate to its events being durable, by event store.",
                            ("store",), buckets=_LATENCY)
SEGMENT_BYTES = Histogram("talix_segment_bytes", "Size of each segment a writer appended.",
                          buckets=(1024, 4096, 16384, 65536, 262144, 1 << 20, 4 << 20,
                                   8 << 20, 32 << 20))
SEGMENT_COMMITS = Histogram("talix_segment_commits", "Commits (commands) in each segment a "
                            "writer appended (group commit).",
                            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2000))
STORE_REQUESTS = Counter("talix_objectstore_requests", "Object-store requests, by operation "
                         "(get, put, list, delete) and kind (the top-level folder: journal, "
                         "index, checkpoints, files, ...).", ("op", "kind"))
CONSUMER_LAG_SEGMENTS = Gauge("talix_consumer_lag_segments", "Segments written but not yet "
                              "processed by a consumer (the dispatcher, a view), all "
                              "partitions.", ("consumer",))
CONSUMER_LAG_SECONDS = Gauge("talix_consumer_lag_seconds", "How long a consumer has had "
                             "segments to process (0 when it is caught up).", ("consumer",))
ACTION_RUNS = Counter("talix_action_runs", "Runs of event-, queue- and timer-triggered actions, "
                      "by action and outcome (ok, failed, deadlettered).", ("action", "outcome"))
ACTION_RETRIES = Counter("talix_action_retries", "Retries of triggered actions after a failed "
                         "attempt.", ("action",))
DEADLETTERS = Counter("talix_deadletters", "Triggered actions given up on (dead letters "
                      "written).", ("action",))
HTTP_REQUESTS = Counter("talix_http_requests", "HTTP requests of the generated API, by route "
                        "template, method and status.", ("route", "method", "status"))
HTTP_SECONDS = Histogram("talix_http_request_seconds", "HTTP request durations, by route "
                         "template and method.", ("route", "method"), buckets=_LATENCY)
