"""What each process has served: counts by status, latency, for /_/status and /_/metrics.

One `ProcessStats` per process id, kept by the supervisor across reloads. Recording a request
is a few dictionary and list operations; percentiles and the Prometheus text are computed only
when someone asks.
"""

from __future__ import annotations

import bisect
from collections import Counter, deque
from typing import Final

_bisect_left: Final = bisect.bisect_left  # a C-level constant, not two lookups per call

# Latency histogram buckets, in seconds (Prometheus convention: each bucket counts <= bound).
# (A tuple of any length to mypyc: a fixed one is boxed anew for each bisect.)
BUCKETS: Final[tuple[float, ...]] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
)  # fmt: skip
_RECENT: Final = 2048  # latencies kept for percentiles


class ProcessStats:
    def __init__(self) -> None:
        self.by_status: Counter[int] = Counter()
        self.bucket_counts = [0] * (len(BUCKETS) + 1)  # the last is +Inf
        self.latency_sum = 0.0
        self._recent: deque[float] = deque(maxlen=_RECENT)

    def record(self, status: int, seconds: float) -> None:
        self.by_status[status] += 1
        self.bucket_counts[_bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum += seconds
        self._recent.append(seconds)

    @property
    def requests(self) -> int:
        return sum(self.by_status.values())

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.by_status.items() if status >= 500)

    def percentile_ms(self, fraction: float) -> float | None:
        """The latency below which `fraction` of the recent requests fell, in milliseconds."""
        if not self._recent:
            return None
        ordered = sorted(self._recent)
        return 1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
