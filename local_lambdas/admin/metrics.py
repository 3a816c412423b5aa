"""/_/metrics: the proxy's state in the Prometheus text format, built from the live state when
scraped (nothing on the request path). Imported at the first scrape: prometheus_client costs
a tenth of the proxy's start."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from local_lambdas.cache import Cache
from local_lambdas.stats import BUCKETS
from local_lambdas.supervision.pool import Pool
from local_lambdas.supervision.states import State
from local_lambdas.supervision.supervisor import Supervisor

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def exposition(supervisor: Supervisor) -> bytes:
    """Every metric, now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(supervisor))
    return generate_latest(registry)


_GAUGES: list[tuple[str, str, Callable[[Pool], float]]] = [
    ("in_flight", "Requests being answered now", lambda p: sum(i.in_flight for i in p.instances)),
    ("queue_depth", "Requests waiting for a free instance", lambda p: p.waiting),
    ("process_up", "1 when every instance of the process is READY", lambda p: int(p.ready)),
    ("instances_ready", "Instances READY",
     lambda p: sum(i.state is State.READY for i in p.instances)),
]  # fmt: skip


_CACHE_COUNTERS: list[tuple[str, str, Callable[[Cache], float]]] = [
    ("hits", "Answers served from the cache", lambda c: c.hits),
    ("misses", "Cacheable requests the cache could not answer", lambda c: c.misses),
]


class _Collector:
    """Builds every metric from the live state when scraped; nothing on the request path."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    def collect(self) -> Iterator[Metric]:
        pools = self._supervisor.pools
        requests = CounterMetricFamily(
            "local_lambdas_requests", "Requests answered, by process and status",
            labels=["process", "status"],
        )  # fmt: skip
        latency = HistogramMetricFamily(
            "local_lambdas_request_duration_seconds", "Time to answer a request, by process",
            labels=["process"],
        )  # fmt: skip
        for pid, stats in self._supervisor.stats.items():
            for status, count in sorted(stats.by_status.items()):
                requests.add_metric([pid, str(status)], count)
            cumulative, buckets = 0, []
            for bound, count in zip((*map(str, BUCKETS), "+Inf"), stats.bucket_counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([pid], buckets, stats.latency_sum)
        yield requests
        yield latency
        for name, doc, value in _GAUGES:
            gauge = GaugeMetricFamily(f"local_lambdas_{name}", doc, labels=["process"])
            for pid, pool in pools.items():
                gauge.add_metric([pid], value(pool))
            yield gauge
        for name, doc, read in _CACHE_COUNTERS:
            counter = CounterMetricFamily(f"local_lambdas_cache_{name}", doc, labels=["process"])
            for pid, pool in pools.items():
                if pool.cache is not None:
                    counter.add_metric([pid], read(pool.cache))
            yield counter
        cached = GaugeMetricFamily(
            "local_lambdas_cache_bytes", "Bytes of answers the cache holds", labels=["process"]
        )
        for pid, pool in pools.items():
            if pool.cache is not None:
                cached.add_metric([pid], pool.cache.size)
        yield cached
        restarts = CounterMetricFamily(
            "local_lambdas_restarts", "Restarts of a process's instances", labels=["process"]
        )
        for pid, pool in pools.items():
            restarts.add_metric([pid], sum(i.restarts for i in pool.instances))
        yield restarts
