"""The bridge writes times field by field for speed: the text must stay what the library calls wrote
(records already in Kafka and every golden file carry it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.events.fingerprint import utc_second
from bridge.formats.base import rfc3339

#: Aware datetimes in UTC (`datetime.UTC`, the bridge's own) and at other offsets, zero among them.
OFFSETS = st.sampled_from(
    [
        UTC,
        timezone(timedelta(0)),
        timezone(timedelta(hours=-5)),
        timezone(timedelta(minutes=330)),
    ]
)
MOMENTS = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=OFFSETS)


@settings(max_examples=2000, deadline=None)
@given(MOMENTS)
def test_rfc3339_is_isoformat_to_the_millisecond_with_z_for_utc(moment: datetime) -> None:
    assert rfc3339(moment) == moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@settings(max_examples=2000, deadline=None)
@given(MOMENTS)
def test_utc_second_is_strftime_of_the_moment_in_utc(moment: datetime) -> None:
    assert utc_second(moment) == moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_milliseconds_are_truncated_not_rounded() -> None:
    assert rfc3339(datetime(2027, 2, 10, 23, 59, 59, 999_999, tzinfo=UTC)) == "2027-02-10T23:59:59.999Z"
    assert rfc3339(datetime(5, 1, 1, tzinfo=UTC)) == "0005-01-01T00:00:00.000Z"
