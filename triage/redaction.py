"""Replace obvious personal data in complaint text before the text is stored.

Complaint text is untrusted and routinely holds e-mail addresses, phone numbers, payment
card numbers, social security numbers and account numbers. `Redactor.redact` replaces each
one it finds with a placeholder naming its kind (``[EMAIL]``, ``[PHONE]``, ``[CARD]``,
``[SSN]``, ``[ACCOUNT]``) and leaves every other character exactly as it was, so the stored
text still reads as the complaint did. The masks already in CFPB narratives (``XXXX``,
``XX/XX/2023``) are left as they are.

Each kind is a pattern recognizer with a validation step, as in presidio-analyzer, whose
approach this module follows without depending on it because importing it pulls spaCy into
the serving process. Phone numbers come from libphonenumber (`phonenumbers`); card numbers
must pass the Luhn check; social security numbers must have a valid area, group and serial;
bare nine-digit social security numbers and account or routing numbers are taken only close
after a context word ("SSN", "account number", "routing", ...), because a bare run of digits
is more often an amount, a date or a reference to a statute.

Matches of different kinds may overlap (a phone matcher can see a phone number inside a
card number). Overlaps are resolved deterministically: the longest match wins, then the most
specific kind in the order email, card, ssn, account, phone, then the earliest.

The text is never logged: this module has no logger.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import phonenumbers

KINDS = ("email", "phone", "card", "ssn", "account")

# Overlap tie-break after length: the lower the more specific.
_PRIORITY = {"email": 0, "card": 1, "ssn": 2, "account": 3, "phone": 4}

_CARD_DIGITS = range(13, 20)
# A digit doubled by the Luhn check, with the digits of the result summed.
_LUHN_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)

_EMAIL = re.compile(
    r"(?<![\w.%+-])(?P<local>[\w.%+-]{1,64})@"
    r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}\b"
)

# A maximal run of digits with at most one space or dash between any two of them.
_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d)*")
_DIGIT_GROUP = re.compile(r"\d+")

_SSN_FORMATTED = re.compile(
    r"(?<!\d)(?<!\d[ -])(\d{3})([ -])(\d{2})\2(\d{4})(?![ -]?\d)"
)

# What may stand between a context word and the number it introduces:
# "account number: 123...", "acct # 123...", "SSN is 123...", "loan no. 123...".
_GAP = (
    r"[\s:#.\-]{0,4}"
    r"(?:(?:numbers?|num|nbr|no|id)\b\.?[\s:#.\-]{0,4})?"
    r"(?:(?:is|was|ending\s+in|ends\s+in)\b[\s:#\-]{0,4})?"
)

_SSN_CONTEXT = re.compile(
    r"\b(?:ssn|ss\s*#|soc\.?\s*sec\.?|social\s+security)s?"
    + _GAP
    + r"(\d{9})(?![ -]?\d)",
    re.IGNORECASE,
)

_ACCOUNT_CONTEXT = re.compile(
    r"(?:\b(?:accounts?|accts?|a/c|routing|aba)"
    r"|\b(?:member|loan)\s*(?=numbers?\b|num\b|nbr\b|no\b|id\b|#))"
    + _GAP
    + r"(\d(?:[ -]?\d){5,16})(?![ -]?\d)(?![.,/]\d)",  # 6-17 digits
    re.IGNORECASE,
)

_DATE = re.compile(
    r"(?P<m>\d{1,2})[ -](?P<d>\d{1,2})[ -]\d{2}(?:\d{2})?"
    r"|\d{4}[ -](?P<m2>\d{1,2})[ -](?P<d2>\d{1,2})"
)
_YEAR = re.compile(r"(?:19|20)\d\d")
_NANP = re.compile(r"[2-9]\d\d[2-9]\d{6}")
# A phone number's digits and punctuation, before any extension ("ext. 12", "x12").
_PHONE_BODY = re.compile(r"[\d\s()+./\-\u2010-\u2015]*")
_OPENING = "([\uff08\uff3b"
_CLOSING = ")]\uff09\uff3d"
_CURRENCY = frozenset("$\u00a2\u00a3\u00a5\u20ac")
_MAY_MATCH = re.compile(r"[\d@]")


@dataclass(frozen=True)
class Redaction:
    """The result of redacting one text."""

    text: str
    """The text with every match replaced by its placeholder; all else unchanged."""
    counts: dict[str, int]
    """Kind -> number of matches replaced, in `KINDS` order, for the kinds found only."""

    @property
    def changed(self) -> bool:
        """Whether anything was replaced (so the stored text differs from the input)."""
        return bool(self.counts)


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    kind: str


class Redactor:
    """Finds and replaces the chosen kinds of personal data; reusable and thread-safe."""

    def __init__(self, kinds: Iterable[str] = KINDS, region: str = "US") -> None:
        """Choose the kinds to redact and the phone region for numbers without a ``+``.

        A bare string is taken as one kind. An unknown kind or phone region raises
        ValueError, so a misspelt setting fails at startup rather than redacting less.
        """
        chosen = {kinds} if isinstance(kinds, str) else set(kinds)
        unknown = sorted(chosen - set(KINDS))
        if unknown:
            raise ValueError(
                f"unknown redaction kind(s): {', '.join(unknown)}; "
                f"allowed: {', '.join(KINDS)}"
            )
        region = region.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(
                f"unknown phone region {region!r}; use a two-letter region code "
                "such as 'US' or 'GB'"
            )
        self.kinds: tuple[str, ...] = tuple(k for k in KINDS if k in chosen)
        self.region = region

    def redact(self, text: str) -> Redaction:
        """Replace every match of the chosen kinds in `text` with its placeholder."""
        spans: list[_Span] = []
        if _MAY_MATCH.search(text):
            for kind in self.kinds:
                spans.extend(self._find(kind, text))
        return _apply(text, _resolve(spans))

    def _find(self, kind: str, text: str) -> Iterator[_Span]:
        if kind == "phone":
            return _find_phones(text, self.region)
        return _FINDERS[kind](text)


def luhn_valid(digits: str) -> bool:
    """Whether `digits` (digits only, at least two) passes the Luhn checksum.

    Every payment card number does; a random number does one time in ten, so the check
    keeps order numbers and the like from being taken for cards.
    """
    if len(digits) < 2 or not digits.isdecimal():
        return False
    kept = sum(int(d) for d in digits[-1::-2])
    doubled = sum(_LUHN_DOUBLED[int(d)] for d in digits[-2::-2])
    return (kept + doubled) % 10 == 0


def _find_emails(text: str) -> Iterator[_Span]:
    if "@" not in text:
        return
    for match in _EMAIL.finditer(text):
        if set(match["local"]) <= {"X", "."}:  # already masked, e.g. XXXX@XXXX.com
            continue
        yield _Span(match.start(), match.end(), "email")


def _find_phones(text: str, region: str) -> Iterator[_Span]:
    matcher = phonenumbers.PhoneNumberMatcher(
        text, region, leniency=phonenumbers.Leniency.POSSIBLE
    )
    for match in matcher:
        if _is_phone(match) and not _after_currency(text, match.start):
            yield _Span(_unbracketed_start(match), match.end, "phone")


def _unbracketed_start(match: phonenumbers.PhoneNumberMatch) -> int:
    """Where the match starts without an opening bracket it does not close.

    libphonenumber takes the "(" of "(+1 212 555 0143)" into the match but leaves out
    the ")", which would unbalance the text; the "(" of "(212) 555-0143" is kept.
    """
    raw = match.raw_string
    unclosed = sum(map(raw.count, _OPENING)) - sum(map(raw.count, _CLOSING))
    start = match.start
    while unclosed > 0 and raw[start - match.start] in _OPENING:
        start += 1
        unclosed -= 1
    return start


def _is_phone(match: phonenumbers.PhoneNumberMatch) -> bool:
    """A valid number; a North American one must also be written as one.

    libphonenumber rejects unassigned area codes such as the fictional 555, which people
    still write and which are still phone numbers to a reader, so a North American number
    of the right shape is taken too. It also accepts amounts such as "20153.99000" as
    numbers, so a North American number must be grouped like one: 10 digits, 3-7 or 3-3-4,
    with or without a leading 1.
    """
    number = match.number
    if number.country_code != 1:
        return phonenumbers.is_valid_number(number)
    shaped = bool(_NANP.fullmatch(str(number.national_number)))
    return shaped and _nanp_grouped(match.raw_string)


def _nanp_grouped(raw: str) -> bool:
    body = _PHONE_BODY.match(raw)
    groups = [len(g) for g in _DIGIT_GROUP.findall(body.group() if body else "")]
    if groups[:1] == [1]:
        groups = groups[1:]
    elif groups == [11]:
        groups = [10]
    return groups in ([10], [3, 7], [3, 3, 4])


def _after_currency(text: str, start: int) -> bool:
    """Whether a currency sign comes just before `start`, as in "{$31000.00}"."""
    before = text[max(0, start - 3) : start].rstrip(" {(")
    return before[-1:] in _CURRENCY


def _find_cards(text: str) -> Iterator[_Span]:
    """Luhn-valid card-shaped stretches of 13-19 digits, also inside longer digit runs.

    A run such as "4111 1111 1111 1111 123" (a card then its security code) fails as a
    whole, so every stretch of whole groups is checked. A stretch is card-shaped when
    one separator is used throughout and every group but the last has at least four
    digits, which keeps lists such as "123-45-6789 987-65-4321" from being read as cards.
    """
    for run in _DIGIT_RUN.finditer(text):
        body = run.group()
        if len(body) < _CARD_DIGITS[0]:
            continue
        groups = list(_DIGIT_GROUP.finditer(body))
        for first in range(len(groups)):
            digits = ""
            for last in range(first, len(groups)):
                if last > first and not _card_shaped(body, groups, first, last):
                    break
                digits += groups[last].group()
                if len(digits) > _CARD_DIGITS[-1]:
                    break
                if len(digits) in _CARD_DIGITS and luhn_valid(digits):
                    start = run.start() + groups[first].start()
                    yield _Span(start, run.start() + groups[last].end(), "card")


def _card_shaped(run: str, groups: list[re.Match[str]], first: int, last: int) -> bool:
    """Whether extending a stretch from group `first` to group `last` keeps a card shape."""
    separator = run[groups[first].end()]
    return (
        len(groups[last - 1].group()) >= 4 and run[groups[last - 1].end()] == separator
    )


def _find_ssns(text: str) -> Iterator[_Span]:
    for match in _SSN_FORMATTED.finditer(text):
        if _ssn_valid(match[1], match[3], match[4]):
            yield _Span(match.start(), match.end(), "ssn")
    for match in _SSN_CONTEXT.finditer(text):
        digits = match[1]
        if _ssn_valid(digits[:3], digits[3:5], digits[5:]):
            yield _Span(match.start(1), match.end(1), "ssn")


def _ssn_valid(area: str, group: str, serial: str) -> bool:
    """The Social Security Administration never issues these areas, groups or serials."""
    return (
        area not in ("000", "666")
        and not area.startswith("9")
        and group != "00"
        and serial != "0000"
    )


def _find_accounts(text: str) -> Iterator[_Span]:
    for match in _ACCOUNT_CONTEXT.finditer(text):
        if not _looks_like_date_or_years(match[1]):
            yield _Span(match.start(1), match.end(1), "account")


def _looks_like_date_or_years(number: str) -> bool:
    """'06-12-2023', '2023-06-12' or '2019 2020' after "account" is not an account."""
    groups = re.split(r"[ -]", number)
    if len(groups) > 1 and all(_YEAR.fullmatch(g) for g in groups):
        return True
    date = _DATE.fullmatch(number)
    if date is None:
        return False
    month = int(date["m"] or date["m2"])
    day = int(date["d"] or date["d2"])
    return 1 <= month <= 12 and 1 <= day <= 31


_FINDERS: dict[str, Callable[[str], Iterator[_Span]]] = {
    "email": _find_emails,
    "card": _find_cards,
    "ssn": _find_ssns,
    "account": _find_accounts,
}


def _resolve(spans: list[_Span]) -> list[_Span]:
    """Non-overlapping spans, longest first, then most specific kind, then earliest."""
    ordered = sorted(spans, key=lambda s: (s.start - s.end, _PRIORITY[s.kind], s.start))
    starts: list[int] = []
    kept: list[_Span] = []
    for span in ordered:
        index = bisect.bisect_left(starts, span.start)
        if index > 0 and kept[index - 1].end > span.start:
            continue
        if index < len(kept) and kept[index].start < span.end:
            continue
        starts.insert(index, span.start)
        kept.insert(index, span)
    return kept


def _apply(text: str, spans: list[_Span]) -> Redaction:
    """Splice the placeholders for `spans` (sorted, non-overlapping) into `text`."""
    pieces: list[str] = []
    counts = dict.fromkeys(KINDS, 0)
    position = 0
    for span in spans:
        pieces.append(text[position : span.start])
        pieces.append(f"[{span.kind.upper()}]")
        counts[span.kind] += 1
        position = span.end
    pieces.append(text[position:])
    found = {kind: n for kind, n in counts.items() if n}
    return Redaction("".join(pieces) if spans else text, found)
