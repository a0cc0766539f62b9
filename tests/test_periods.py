"""Report periods: spans, day ranges, the period before and time buckets."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from triage.errors import PeriodError
from triage.periods import (
    Period,
    bucket_start,
    buckets,
    days,
    granularity,
    last_days,
    parse_span,
    resolve,
)

NOW = datetime(2026, 12, 3, 15, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        (" 24H ", timedelta(hours=24)),
    ],
)
def test_spans(text, span):
    assert parse_span(text) == span


@pytest.mark.parametrize("text", ["", "7", "d", "0d", "7 days", "-3d", "1y"])
def test_bad_spans_say_what_to_write(text):
    with pytest.raises(PeriodError, match='a span such as "7d"'):
        parse_span(text)


def test_resolve_a_span_or_a_start_date():
    assert resolve("7d", None, NOW) == Period(NOW - timedelta(days=7), NOW)
    assert resolve("7d", None, NOW).label() == "2026-11-26 15:30 to 2026-12-03 15:30"
    period = resolve("2026-11-01", "2026-11-30", NOW)
    assert period == days(date(2026, 11, 1), date(2026, 11, 30))
    assert period.label() == "2026-11-01 to 2026-11-30"
    assert resolve("1w", "2026-11-30", NOW).first_day == date(2026, 11, 24)
    with pytest.raises(PeriodError, match="--since 'yesterday' is not understood"):
        resolve("yesterday", None, NOW)
    with pytest.raises(PeriodError, match="until 'soon' is not a date"):
        resolve("7d", "soon", NOW)
    with pytest.raises(PeriodError, match="give the earlier date first"):
        resolve("2026-12-05", "2026-12-01", NOW)


def test_days_previous_and_labels():
    period = last_days(date(2026, 12, 3), 30)
    assert period.first_day == date(2026, 11, 4) and period.last_day == date(
        2026, 12, 3
    )
    assert period.length == timedelta(days=30)
    before = period.previous()
    assert before.until == period.since and before.length == period.length
    assert days(date(2026, 12, 3), date(2026, 12, 3)).label() == "2026-12-03"
    with pytest.raises(PeriodError, match="timezone-aware"):
        Period(datetime(2026, 1, 1), datetime(2026, 1, 2))


def test_buckets_cover_the_period_and_empty_ones_count():
    november = days(date(2026, 11, 1), date(2026, 11, 30))
    assert granularity(november) == "day"
    assert len(list(buckets(november, "day"))) == 30
    quarter = days(date(2026, 9, 1), date(2026, 11, 30))
    assert granularity(quarter) == "week"
    weeks = list(buckets(quarter, "week"))
    assert weeks[0] == date(2026, 8, 31) and all(w.weekday() == 0 for w in weeks)
    year = days(date(2026, 1, 15), date(2026, 12, 3))
    assert granularity(year) == "month"
    assert list(buckets(year, "month"))[-1] == date(2026, 12, 1)
    assert len(list(buckets(year, "month"))) == 12
    assert bucket_start(NOW, "week") == date(2026, 11, 30)
