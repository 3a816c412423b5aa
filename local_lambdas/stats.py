"""What each process has served: counts by status, latency, for /_/status and /_/metrics.

One `ProcessStats` per process id, kept by the supervisor across reloads. Recording a request
is a few list operations (counts by status in a list indexed by the status, where a Counter
cost 2k instructions a request); percentiles and the Prometheus text are computed only when
someone asks.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

# Latency histogram buckets, in seconds (Prometheus convention: each bucket counts <= bound).
# (A tuple of any length to mypyc: a fixed one is boxed anew for each bisect.)
BUCKETS: Final[tuple[float, ...]] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
)  # fmt: skip
_BUCKET_COUNT: Final = len(BUCKETS)
_RECENT: Final = 2048  # latencies kept for percentiles
_LOWEST: Final = 100  # statuses counted in the list: 100-599 (answers are checked to be)
_STATUSES: Final = 500


def thousandths(x: float) -> float:
    """`x` (>= 0) to three decimal places, as round(x, 3) gives it, by integers: round() costs
    1.5-3k instructions a call, and the times and latencies shown per request (the access
    log's JSON, the dashboard's lines and requests) each took one."""
    return int(x * 1000 + 0.5) / 1000


class ProcessStats:
    def __init__(self) -> None:
        self._by_status = [0] * _STATUSES  # index: status - 100
        self._other: Counter[int] = Counter()  # any status outside it (not seen)
        self.bucket_counts = [0] * (len(BUCKETS) + 1)  # the last is +Inf
        self.latency_sum = 0.0
        # The last _RECENT latencies, the oldest at _next once it is full (a deque's append
        # is a method call: 250 instructions more).
        self._recent: list[float] = []
        self._next = 0

    def record(self, status: int, seconds: float) -> None:
        # (`counts[i] = counts[i] + 1`: compiled, an int's addition, where `+=` on an item
        # is the generic one.)
        index = status - _LOWEST
        if 0 <= index < _STATUSES:
            by_status = self._by_status
            by_status[index] = by_status[index] + 1
        else:
            self._other[status] += 1
        bucket = 0  # the first bound at or above `seconds` (bisect_left), found in a few steps
        while bucket < _BUCKET_COUNT and BUCKETS[bucket] < seconds:
            bucket += 1
        counts = self.bucket_counts
        counts[bucket] = counts[bucket] + 1
        self.latency_sum += seconds
        recent = self._recent
        if len(recent) < _RECENT:
            recent.append(seconds)
        else:
            recent[self._next] = seconds
            self._next = (self._next + 1) % _RECENT

    @property
    def by_status(self) -> dict[int, int]:
        """Requests answered, by status (those with none left out)."""
        counts = {_LOWEST + index: n for index, n in enumerate(self._by_status) if n}
        counts.update(self._other)
        return counts

    @property
    def requests(self) -> int:
        return sum(self._by_status) + sum(self._other.values())

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.by_status.items() if status >= 500)

    def percentile_ms(self, fraction: float) -> float | None:
        """The latency below which `fraction` of the recent requests fell, in milliseconds."""
        if not self._recent:
            return None
        ordered = sorted(self._recent)
        return 1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
