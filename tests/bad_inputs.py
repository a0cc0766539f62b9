"""Bad input for every route: what a careless or hostile client might send.

Each entry is (name, method, path, request keyword arguments). The service must answer each
with a 4xx that says what was wrong, or with a correct answer, and never with a 5xx. The test
suite runs the table (tests/test_bad_input.py) and so does the soak script.
"""

from __future__ import annotations

MB = 1024 * 1024
CASE = "/v1/cases/bad-1"
OUTCOME = f"{CASE}/outcome"


def _json(body) -> dict:
    return {"json": body}


def _raw(content: bytes, content_type: str = "application/json") -> dict:
    return {"content": content, "headers": {"content-type": content_type}}


def _nested(depth: int) -> bytes:
    return b'{"text": ' + b"[" * depth + b"]" * depth + b"}"


SCORING = [
    ("empty text", _json({"text": ""})),
    ("whitespace text", _json({"text": " \t\n "})),
    ("1 MB text", _json({"text": "a" * MB})),
    ("invalid UTF-8 bytes", _raw(b'{"text": "\xff\xfe\xfd"}')),
    ("unpaired surrogate", _raw(b'{"text": "\\ud800 x"}')),
    ("NUL and control characters", _json({"text": "\x00\x01\x02\x1b[31m"})),
    ("only zero-width characters", _json({"text": "\u200b\u200c\ufeff"})),
    (
        "right-to-left text and emoji",
        _json({"text": "لم يتم رد المبلغ 😡 \u202e reversed"}),
    ),
    ("text is a number", _json({"text": 5})),
    ("text is null", _json({"text": None})),
    ("no text", _json({"metadata": {}})),
    ("unknown field", _json({"text": "fee", "priority": "high"})),
    ("metadata is a list", _json({"text": "fee", "metadata": ["a"]})),
    ("nested metadata", _json({"text": "fee", "metadata": {"a": {"b": 1}}})),
    (
        "huge metadata",
        _json({"text": "fee", "metadata": {f"k{i}": i for i in range(5000)}}),
    ),
    ("1 MB metadata value", _json({"text": "fee", "metadata": {"company": "x" * MB}})),
    ("NaN metadata", _raw(b'{"text": "fee", "metadata": {"n": NaN}}')),
    ("empty case id", _json({"text": "fee", "case_id": ""})),
    ("case id with spaces", _json({"text": "fee", "case_id": "a b"})),
    ("case id of 10,000 characters", _json({"text": "fee", "case_id": "a" * 10_000})),
    ("case id with HTML", _json({"text": "fee", "case_id": "<script>"})),
    ("record is a string", _json({"text": "fee", "record": "yes"})),
    ("case id of only dots", _json({"text": "fee", "case_id": ".."})),
    (
        "NUL in a stored complaint",
        _json({"text": "fee \x00 refund", "case_id": "nul-1"}),
    ),
    (
        "NUL in a metadata value",
        _json({"text": "fee", "metadata": {"company": "a\x00"}}),
    ),
    ("9 MB body", _raw(b'{"text": "' + b" " * (9 * MB) + b'x"}')),
    ("body is an array", _json([{"text": "fee"}])),
    ("body is not JSON", _raw(b"text=fee", "application/x-www-form-urlencoded")),
    ("empty body", _raw(b"")),
    ("truncated JSON", _raw(b'{"text": "fee"')),
    ("JSON nested 100,000 deep", _raw(_nested(100_000))),
    (
        "bad Idempotency-Key",
        {
            "json": {"text": "fee", "record": True},
            "headers": {"Idempotency-Key": b"\xe9"},
        },
    ),
]

BATCH = [
    ("10,000-item batch", _json({"items": [{"text": "fee"}] * 10_000})),
    ("empty batch", _json({"items": []})),
    ("items is an object", _json({"items": {"text": "fee"}})),
    ("one bad item", _json({"items": [{"text": "fee"}, {"text": ""}]})),
    ("batch of 1 MB texts", _json({"items": [{"text": "b" * MB}] * 3})),
]

CASES = [
    ("negative limit", "GET", "/v1/cases?limit=-1", {}),
    ("limit is not a number", "GET", "/v1/cases?limit=ten", {}),
    ("unknown status", "GET", "/v1/cases?status=lost", {}),
    ("since is not a date", "GET", "/v1/cases?since=yesterday", {}),
    ("flagged is not a boolean", "GET", "/v1/cases?flagged=maybe", {}),
    ("category of 10,000 characters", "GET", "/v1/cases?category=" + "c" * 10_000, {}),
    ("huge offset", "GET", f"/v1/cases?offset={2**70}", {}),
    ("case id of 10,000 characters", "GET", "/v1/cases/" + "a" * 10_000, {}),
    ("case id with emoji", "GET", "/v1/cases/%F0%9F%98%A1", {}),
    ("case id with a NUL", "GET", "/v1/cases/a%00b", {}),
    ("case id with a space", "GET", "/v1/cases/a%20b", {}),
    ("NUL in a query", "GET", "/v1/cases?category=%00", {}),
    ("NUL in similar cases", "GET", "/v1/cases/%00/similar", {}),
    ("since is a plain date", "GET", "/v1/cases?since=2026-12-01&until=2026-12-31", {}),
    ("since in the year 1", "GET", "/v1/cases?since=0001-01-01T00:00:00Z", {}),
    ("explain an unknown case", "GET", "/v1/cases/none/explanation", {}),
]

OUTCOMES = [
    ("escalated is a string", _json({"escalated": "yes", "category": "fees"})),
    ("no category", _json({"escalated": True})),
    ("blank category", _json({"escalated": True, "category": "  "})),
    ("1 MB lesson", _json({"escalated": True, "category": "fees", "lesson": "l" * MB})),
    (
        "control characters in the lesson",
        _json({"escalated": True, "category": "fees", "lesson": "\x00\x07"}),
    ),
    ("unknown field", _json({"escalated": True, "category": "fees", "score": 1})),
    (
        "Idempotency-Key of 10,000 characters",
        {
            "json": {"escalated": True, "category": "fees"},
            "headers": {"Idempotency-Key": "k" * 10_000},
        },
    ),
    ("body is not JSON", _raw(b"escalated=yes")),
]

ADMIN = [
    ("unknown role", "POST", "/v1/keys", _json({"name": "x", "role": "root"})),
    (
        "name of 10,000 characters",
        "POST",
        "/v1/keys",
        _json({"name": "n" * 10_000, "role": "caller"}),
    ),
    (
        "negative rate limit",
        "POST",
        "/v1/keys",
        _json({"name": "x", "role": "caller", "rate_limit_per_minute": -1}),
    ),
    (
        "rate limit beyond any integer column",
        "POST",
        "/v1/keys",
        _json({"name": "x", "role": "caller", "rate_limit_per_minute": 2**70}),
    ),
    (
        "key name with control characters",
        "POST",
        "/v1/keys",
        _json({"name": "a\x00\x1b", "role": "caller"}),
    ),
    ("key id is not a number", "DELETE", "/v1/keys/abc", {}),
    ("key id beyond any integer column", "DELETE", f"/v1/keys/{2**70}", {}),
    ("unknown key id", "DELETE", "/v1/keys/999999", {}),
    ("reload with a body", "POST", "/v1/models/reload", _raw(b"\xff")),
]

PAGES = [
    (
        "sign-in key of 1 MB",
        "POST",
        "/review/sign-in",
        {"data": {"key": "k" * MB, "csrf": "x"}},
    ),
    (
        "sign-in with no form",
        "POST",
        "/review/sign-in",
        _raw(b"\xff\xfe", "multipart/form-data"),
    ),
    ("queue page is not a number", "GET", "/review?page=abc", {}),
    ("queue date is not a date", "GET", "/review?since=31/02/2026", {}),
    ("queue date in the year 9999", "GET", "/review?until=9999-12-31", {}),
    ("reports from the year 1", "GET", "/reports?since=0001-01-01", {}),
    ("reports to the year 9999", "GET", "/reports?until=9999-12-31", {}),
    ("digest to the year 9999", "GET", "/reports/digest?until=9999-12-31", {}),
    ("CSV from the year 1", "GET", "/reports/lessons.csv?since=0001-01-01", {}),
]


def bad_inputs() -> list[tuple[str, str, str, dict]]:
    """Every entry as (name, method, path, request keyword arguments)."""
    table = [(f"triage: {n}", "POST", "/v1/triage", k) for n, k in SCORING]
    table += [(f"batch: {n}", "POST", "/v1/triage/batch", k) for n, k in BATCH]
    table += [(f"cases: {n}", m, p, k) for n, m, p, k in CASES]
    table += [(f"outcome: {n}", "POST", OUTCOME, k) for n, k in OUTCOMES]
    table += [(f"admin: {n}", m, p, k) for n, m, p, k in ADMIN]
    table += [(f"page: {n}", m, p, k) for n, m, p, k in PAGES]
    return table
