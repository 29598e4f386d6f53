"""The fingerprint's inputs: records already in Kafka carry fingerprints, so their text must never change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bridge.events.fingerprint import utc_second


@pytest.mark.parametrize("year", [1, 9, 99, 999, 1000, 1970, 2026, 9999])
def test_the_second_is_written_as_strftime_wrote_it(year: int) -> None:
    moment = datetime(year, 3, 4, 5, 6, 7, 890_123, tzinfo=UTC)
    assert utc_second(moment) == moment.strftime("%Y-%m-%dT%H:%M:%SZ") == f"{year}-03-04T05:06:07Z"


def test_the_second_is_taken_in_utc() -> None:
    moment = datetime(2027, 2, 10, 23, 30, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert utc_second(moment) == "2027-02-11T04:30:00Z"
