"""Observability: metrics (Ray's Prometheus endpoint or prometheus_client) and structured
logs carrying the application, aggregate, command, event and request ids."""

from . import logs, metrics

__all__ = ["logs", "metrics"]
