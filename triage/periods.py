"""Report periods: spans such as "7d", day ranges, the period before, and time buckets.

A period is a half-open interval [since, until) of timezone-aware UTC instants, so adjacent
periods never count a case twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from triage.errors import PeriodError

SPAN = re.compile(r"^\s*(\d{1,4})\s*([hdw])\s*$", re.IGNORECASE)
UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
SPAN_HELP = 'a span such as "7d", "2w" or "24h", or a date such as 2026-12-03'


# Dates outside these years are typing slips, and their arithmetic overflows `datetime`.
EARLIEST, LATEST = 1900, 2999


@dataclass(frozen=True)
class Period:
    """The instants from `since` (included) to `until` (excluded), in UTC."""

    since: datetime
    until: datetime

    def __post_init__(self) -> None:
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise PeriodError("period bounds must be timezone-aware")
        if self.until <= self.since:
            raise PeriodError(
                f"the period ends ({self.until:%Y-%m-%d %H:%M}) before it starts "
                f"({self.since:%Y-%m-%d %H:%M}); give the earlier date first"
            )

    @property
    def length(self) -> timedelta:
        return self.until - self.since

    def previous(self) -> Period:
        """The period of the same length that ends where this one starts."""
        return Period(self.since - self.length, self.since)

    @property
    def first_day(self) -> date:
        return self.since.astimezone(UTC).date()

    @property
    def last_day(self) -> date:
        """The last calendar day with an instant in the period."""
        return (self.until - timedelta(microseconds=1)).astimezone(UTC).date()

    def label(self) -> str:
        """Whole days as dates (the last one included); other bounds to the minute."""
        if not _at_midnight(self.since) or not _at_midnight(self.until):
            return f"{self.since:%Y-%m-%d %H:%M} to {self.until:%Y-%m-%d %H:%M}"
        if self.first_day == self.last_day:
            return self.first_day.isoformat()
        return f"{self.first_day.isoformat()} to {self.last_day.isoformat()}"


def _at_midnight(instant: datetime) -> bool:
    return instant.astimezone(UTC).time() == time()


def parse_span(text: str) -> timedelta:
    """A span of hours, days or weeks: "24h", "7d", "2w"."""
    match = SPAN.match(text or "")
    if not match or int(match.group(1)) == 0:
        raise PeriodError(f"{text!r} is not a span: use {SPAN_HELP}")
    return int(match.group(1)) * UNITS[match.group(2).lower()]


def parse_day(text: str, name: str = "date") -> date:
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise PeriodError(
            f"{name} {text!r} is not a date: use YYYY-MM-DD, e.g. 2026-12-03"
        ) from None
    return _within_years(day, name)


def _within_years(day: date, name: str) -> date:
    if not EARLIEST <= day.year <= LATEST:
        raise PeriodError(
            f"{name} {day.isoformat()} is outside the years {EARLIEST} to {LATEST}"
        )
    return day


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def days(first: date, last: date) -> Period:
    """Whole UTC days from `first` to `last`, both included."""
    if last < first:
        raise PeriodError(
            f"the period ends ({last.isoformat()}) before it starts "
            f"({first.isoformat()}); give the earlier date first"
        )
    return Period(midnight(first), midnight(last + timedelta(days=1)))


def last_days(today: date, count: int) -> Period:
    """The `count` whole days that end with `today`."""
    return days(today - timedelta(days=count - 1), today)


def resolve(since: str, until: str | None, now: datetime) -> Period:
    """The period a command line names: `since` a span back from `until` or a start date;
    `until` an end date (included) or, without one, now."""
    end = midnight(parse_day(until, "until") + timedelta(days=1)) if until else now
    if SPAN.match(since or ""):
        return Period(end - parse_span(since), end)
    try:
        start = date.fromisoformat((since or "").strip())
    except ValueError:
        raise PeriodError(
            f"--since {since!r} is not understood: use {SPAN_HELP}"
        ) from None
    return Period(midnight(_within_years(start, "--since")), end)


def granularity(period: Period) -> str:
    """The bucket a volume chart reads best in: days up to about six weeks, then weeks,
    then months."""
    if period.length <= timedelta(days=45):
        return "day"
    if period.length <= timedelta(days=210):
        return "week"
    return "month"


def bucket_start(instant: datetime, unit: str) -> date:
    """The first day of the bucket `instant` falls in (weeks start on Monday)."""
    day = instant.astimezone(UTC).date()
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    return day


def buckets(period: Period, unit: str) -> Iterator[date]:
    """Every bucket the period touches, in order, empty ones included."""
    current = bucket_start(period.since, unit)
    last = bucket_start(period.until - timedelta(microseconds=1), unit)
    while current <= last:
        yield current
        if unit == "month":
            current = (current.replace(day=28) + timedelta(days=4)).replace(day=1)
        else:
            current += timedelta(days=7 if unit == "week" else 1)
