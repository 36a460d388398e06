"""The metric names a scrape of the server can show, and those a query names: for the tests of
what reads the metrics (the alert rules, the dashboard)."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, ProcessCollector

from app.metrics.catalog import Families

_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
_NAME = re.compile(r"\b(?:scoreboard|process)_[a-z0-9_]+\b")
RECORDED = re.compile(r"\bscoreboard:[a-z0-9_:]+\b")  # a recording rule's output, named level:metric:operations


def exported() -> set[str]:
    """Every sample name the server exports: its own families and the process collector's."""
    registry = CollectorRegistry()
    Families(registry, multiprocess=False)
    ProcessCollector(registry=registry)
    return {family.name + suffix for family in registry.collect() for suffix in _SUFFIXES[family.type]}


def named_in(query: str) -> set[str]:
    """The server's metric names a PromQL query reads (not a recording rule's output)."""
    return set(_NAME.findall(RECORDED.sub("", query)))
