"""The lessons digest: a short document for the team about one period against the one before.

It says what failed most, what changed since the previous period of the same length and which
lessons were recorded, with counts. It is built from the same tables as the reports page, then
written as Markdown (to paste or commit) and as a printable HTML page. Lessons, categories and
root causes are free text: the Markdown escapes what Markdown would read as markup, and the
HTML goes through Jinja's autoescaping.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup
from sqlalchemy.orm import Session

from serving.reports import ALL, Report, build_report, grouped
from serving.review import templates
from triage.periods import Period

TOP = 5
LESSONS_PER_CATEGORY = 10
CASE_IDS_SHOWN = 5
STYLE = Path(__file__).resolve().parent / "static" / "reports.css"
# Characters Markdown reads as markup anywhere in a line, and at the start of one.
MARKDOWN_ANYWHERE = re.compile(r"([\\`*_\[\]<>|~&])")
MARKDOWN_LINE_START = re.compile(r"^([#+\-=>])")
MARKDOWN_ORDERED = re.compile(r"^(\d+)([.)])")


@dataclass(frozen=True)
class Lesson:
    text: str
    cases: int
    case_ids: list[str]


@dataclass(frozen=True)
class LessonGroup:
    category: str
    cases: int
    lessons: list[Lesson]
    more: int


@dataclass(frozen=True)
class Digest:
    """What the digest says, as plain values; `render_markdown` and the HTML template lay
    out the same fields."""

    period: Period
    previous: Period
    numbers: list[str]
    failed_most: list[tuple[str, int, int]]
    root_causes: list[tuple[str, int, int]]
    changes: list[str]
    lessons: list[LessonGroup]
    lesson_count: int

    @property
    def title(self) -> str:
        return f"Lessons digest: {self.period.label()}"


def build_digest(session: Session, period: Period) -> Digest:
    """The digest of `period`, compared with the period of the same length before it."""
    now = build_report(session, period, threshold=None)
    before = build_report(session, period.previous(), threshold=None)
    previous_causes = {row[0]: row[1] for row in before.root_causes.rows}
    lessons = _lesson_groups(now)
    return Digest(
        period=period,
        previous=period.previous(),
        numbers=_numbers(now, before, sum(g.cases for g in lessons)),
        failed_most=[(row[0], row[1], row[3]) for row in now.categories.rows[:TOP]],
        root_causes=[
            (cause, cases, previous_causes.get(cause, 0))
            for cause, cases, _ in now.root_causes.rows[:TOP]
        ],
        changes=_changes(now, before, previous_causes),
        lessons=lessons,
        lesson_count=sum(g.cases for g in lessons),
    )


def _escalation(report: Report) -> tuple[int, float | None]:
    """Resolved cases and the share that really escalated, over every category."""
    for label, resolved, _, actual in report.escalation.rows:
        if label == ALL:
            return resolved, actual
    return 0, None


def _percent(rate: float | None) -> str:
    return "no resolved cases" if rate is None else f"{rate * 100:.1f}%"


def _resolved(report: Report) -> str:
    resolved, rate = _escalation(report)
    if not resolved:
        return "none resolved"
    escalated = round(rate * resolved)
    return (
        f"{resolved} resolved, {escalated} of them really escalated ({_percent(rate)})"
    )


def _numbers(now: Report, before: Report, lessons: int) -> list[str]:
    return [
        f"Complaints scored: {now.created} (previous period {before.created}, "
        f"{now.created - before.created:+d})",
        f"Cases: {_resolved(now)}; previous period: {_resolved(before)}",
        f"Lessons recorded: {lessons} in {_categories(len(grouped(now.lessons)))}",
    ]


def _changes(now: Report, before: Report, previous_causes: dict[str, int]) -> list[str]:
    current = {row[0]: row[1] for row in now.categories.rows}
    earlier = {row[0]: row[1] for row in before.categories.rows}
    moves = Counter(
        {label: current.get(label, 0) - earlier.get(label, 0) for label in current}
    )
    moves.update({label: -n for label, n in earlier.items() if label not in current})
    changes = []
    for label, delta in sorted(moves.items(), key=lambda kv: (-abs(kv[1]), kv[0])):
        if delta and len(changes) < TOP:
            verb = "rose" if delta > 0 else "fell"
            changes.append(
                f"{label} {verb} from {earlier.get(label, 0)} to "
                f"{current.get(label, 0)} cases ({delta:+d})"
            )
    resolved, rate = _escalation(now)
    resolved_before, rate_before = _escalation(before)
    if rate is not None and rate_before is not None:
        points = (rate - rate_before) * 100
        changes.append(
            f"The share of resolved cases that really escalated moved {points:+.1f} "
            f"points, from {_percent(rate_before)} of {resolved_before} to "
            f"{_percent(rate)} of {resolved}"
        )
    new = [row[0] for row in now.root_causes.rows if row[0] not in previous_causes]
    for cause in new[:TOP]:
        cases = next(row[1] for row in now.root_causes.rows if row[0] == cause)
        changes.append(f"New root cause: {cause} ({_cases(cases)})")
    return changes or ["Nothing changed: no cases in either period"]


def _lesson_groups(report: Report) -> list[LessonGroup]:
    groups = []
    for category, records in grouped(report.lessons).items():
        texts = Counter(record["lesson"] for record in records)
        ids: dict[str, list[str]] = {}
        for record in records:
            ids.setdefault(record["lesson"], []).append(record["case_id"])
        ranked = sorted(texts, key=lambda text: (-texts[text], text))
        lessons = [
            Lesson(text, texts[text], ids[text][:CASE_IDS_SHOWN])
            for text in ranked[:LESSONS_PER_CATEGORY]
        ]
        more = len(ranked) - len(lessons)
        groups.append(LessonGroup(category, len(records), lessons, more))
    return sorted(groups, key=lambda g: (-g.cases, g.category))


def markdown_text(text: str) -> str:
    """Free text made inert in Markdown: one line, markup characters escaped."""
    line = " ".join(str(text).split())
    line = MARKDOWN_ANYWHERE.sub(r"\\\1", line)
    line = MARKDOWN_ORDERED.sub(r"\1\\\2", line)
    return MARKDOWN_LINE_START.sub(r"\\\1", line)


def render_markdown(digest: Digest) -> str:
    """The digest as a Markdown document."""
    md = markdown_text
    lines = [
        f"# {md(digest.title)}",
        "",
        f"Cases scored from {digest.period.label()} (UTC), compared with the period "
        f"before ({digest.previous.label()}).",
        "",
        "## In numbers",
        "",
        *[f"- {md(item)}" for item in digest.numbers],
        "",
        "## What failed most",
        "",
        "| Category | Cases | Previous period |",
        "|---|---:|---:|",
        *[
            f"| {md(label)} | {n} | {before} |"
            for label, n, before in digest.failed_most
        ],
    ]
    if digest.root_causes:
        lines += ["", "| Root cause | Cases | Previous period |", "|---|---:|---:|"]
        lines += [
            f"| {md(cause)} | {n} | {before} |"
            for cause, n, before in digest.root_causes
        ]
    lines += ["", "## What changed", "", *[f"- {md(c)}" for c in digest.changes]]
    lines += ["", "## Lessons recorded", ""]
    if not digest.lessons:
        lines.append("No lessons were recorded in this period.")
    for group in digest.lessons:
        lines += ["", f"### {md(group.category)} ({_cases(group.cases)})", ""]
        for lesson in group.lessons:
            lines.append(f"- {md(lesson.text)} ({_lesson_cases(lesson, md)})")
        if group.more:
            lines.append(f"- and {group.more} more on the reports page")
    return "\n".join(lines) + "\n"


def _categories(n: int) -> str:
    return f"{n} category" if n == 1 else f"{n} categories"


def _cases(n: int) -> str:
    return f"{n} case" if n == 1 else f"{n} cases"


def _lesson_cases(lesson: Lesson, escape=str) -> str:
    shown = ", ".join(escape(case_id) for case_id in lesson.case_ids)
    more = lesson.cases - len(lesson.case_ids)
    return f"{_cases(lesson.cases)}: {shown}" + (f" and {more} more" if more else "")


def standalone_style() -> Markup:
    """The reports stylesheet, to inline in a digest file opened away from the service.

    It is this package's own file, never user input, so it is marked safe to keep CSS
    selectors such as `>` intact inside <style>.
    """
    return Markup(STYLE.read_text(encoding="utf-8"))


def digest_filenames(digest: Digest) -> tuple[str, str]:
    stem = f"digest-{digest.period.first_day}-to-{digest.period.last_day}"
    return f"{stem}.md", f"{stem}.html"


def render_html(digest: Digest) -> str:
    """The digest as one self-contained, printable HTML file (its style inlined)."""
    page = templates.get_template("digest.html")
    return page.render(digest=digest, style=standalone_style())


def write_digest(digest: Digest, folder: Path) -> tuple[Path, Path]:
    """Write the Markdown and the HTML file into `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    markdown, page = (folder / name for name in digest_filenames(digest))
    markdown.write_text(render_markdown(digest), encoding="utf-8")
    page.write_text(render_html(digest), encoding="utf-8")
    return markdown, page
