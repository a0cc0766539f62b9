"""Domain errors of triage.

Every error a user can cause or fix derives from :class:`TriageError`, so the HTTP layer and the
CLI can each translate them in one place.
"""


class TriageError(Exception):
    """Base class of the errors triage raises on purpose."""


class BundleError(TriageError):
    """A model bundle is missing a file, or a file in it is corrupt or incompatible."""


class InvalidComplaintError(TriageError):
    """A complaint cannot be scored as given (empty text, text over the limit, ...)."""


class DatasetSpecError(TriageError):
    """A dataset spec, or the data it points at, does not match what the spec declares."""


class PeriodError(TriageError, ValueError):
    """A report period cannot be read (a span like "7d" or a date like 2026-12-03)."""
