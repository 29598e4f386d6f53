"""One metric value: the number behind every series the bridge exports, compiled (mypyc) so that an update is
a native call.

prometheus-client keeps each series' number in an instance of `values.ValueClass`, by default `MutexValue`:
a Python method that takes a lock around `self._value += amount`, because interpreted code may let another
thread run between the read and the store. A delivery makes about ten updates (answers, deliveries, the
request's histogram, the guard's gauges, the Kafka report's counter and histogram), and those frames and
locks were 3 % of the event loop's time under load (docs/benchmarks.md, fifteenth round).

Why no lock here: compiled, the value and the time it was set are C doubles in the object, and an update is a
read, an add and a store in C with no call in between, so nothing can release the GIL (the interpreter
switches threads only between bytecodes, or in C code that releases it) until the update is done. Updates
from the Kafka flush thread and the spool's executor are therefore as atomic as the lock made them. The
same holds for a read of both fields (`current`). It does not hold for an interpreter without a GIL (the
free-threaded builds): the project pins CPython 3.11.
"""

from __future__ import annotations

import bisect
from typing import Any


class MetricValue:
    """prometheus-client's value class (`values.ValueClass`) for every metric of the bridge, with one process
    or with a worker per core: its number, the time it was set (read for a `mostrecent` gauge's files in
    worker mode, bridge/metrics.py) and its exemplar."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """prometheus-client's arguments (the type, the names, the labels, the help text) say what the value
        is for; the value itself needs none of them."""
        self._value = 0.0
        self._timestamp = 0.0
        self._exemplar: Any = None

    def inc(self, amount: float) -> None:
        self._value += amount

    def set(self, value: float, timestamp: float | None = None) -> None:
        self._value = value
        self._timestamp = 0.0 if timestamp is None else timestamp

    def get(self) -> float:
        return self._value

    def set_exemplar(self, exemplar: Any) -> None:
        self._exemplar = exemplar

    def get_exemplar(self) -> Any:
        return self._exemplar

    def current(self) -> tuple[float, float]:
        """The value and the time it was set (0.0 unless a `mostrecent` gauge's `set` gave one), read at
        once."""
        value = self._value
        timestamp = self._timestamp
        return value, timestamp

    def restore(self, value: float, timestamp: float) -> None:
        """Start from what a file held (a worker started under a dead worker's pid, bridge/metrics.py)."""
        self._value = value
        self._timestamp = timestamp


class HistogramValues:
    """A histogram series' values (one per bucket, and the sum), for an observation made in native code."""

    def __init__(self, upper_bounds: list[float], buckets: list[MetricValue], total: MetricValue) -> None:
        """prometheus-client's for one series: the buckets' upper bounds (the last one +Inf), their values,
        and the sum's."""
        self._upper_bounds = upper_bounds
        self._buckets = buckets
        self._sum = total

    def observe(self, amount: float) -> None:
        """As the library's `observe` (without an exemplar), the bucket found by bisection rather than by a
        loop over the bounds: the first bucket whose bound is at least `amount` (none for NaN, as in the
        library)."""
        self._sum.inc(amount)
        bounds = self._upper_bounds
        index = bisect.bisect_left(bounds, amount)
        if amount <= bounds[index]:
            self._buckets[index].inc(1.0)
