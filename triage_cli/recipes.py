"""Where a command's data comes from: a spec file, or one data file with its columns named.

`--spec data/specs/banking77.toml` reads a recipe written by hand; `--data complaints.csv
--text-column body --category-column reason` maps the columns of any CSV, JSONL or Parquet file
on the command line. Both end in the same `DatasetSpec`, read by the same loader, so a bad file
gets the same errors (naming the file, the missing column, the columns found and the flag to
map it) either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from triage.datasets import DatasetSpec, load_spec, spec_for_file

DEFAULT_SPEC = Path("data/specs/cfpb.toml")
PANEL = "Data"

SpecOption = Annotated[
    Path | None,
    typer.Option(
        help=f"Dataset spec (TOML); default {DEFAULT_SPEC} unless --data is given.",
        rich_help_panel=PANEL,
    ),
]
DataOption = Annotated[
    Path | None,
    typer.Option(
        help="A CSV, JSONL or Parquet file to use instead of a spec; name its columns below.",
        rich_help_panel=PANEL,
    ),
]
TextColumn = Annotated[
    str, typer.Option(help="With --data: the complaint text.", rich_help_panel=PANEL)
]
CategoryColumn = Annotated[
    str | None,
    typer.Option(help="With --data: the failure category.", rich_help_panel=PANEL),
]
EscalationColumn = Annotated[
    str | None,
    typer.Option(
        help="With --data: escalated or not (1/true/yes, 0/false/no, empty: unknown).",
        rich_help_panel=PANEL,
    ),
]
TimeColumn = Annotated[
    str | None,
    typer.Option(
        help="With --data: when the complaint came in (sortable text, e.g. ISO dates); "
        "gives a temporal split.",
        rich_help_panel=PANEL,
    ),
]
IdColumn = Annotated[
    str | None, typer.Option(help="With --data: a row id.", rich_help_panel=PANEL)
]
MetadataColumn = Annotated[
    list[str] | None,
    typer.Option(
        help="With --data: a metadata column the model reads (repeatable).",
        rich_help_panel=PANEL,
    ),
]
SplitColumn = Annotated[
    str | None,
    typer.Option(
        help="With --data: the file's own split (train, validation or dev, test).",
        rich_help_panel=PANEL,
    ),
]
FormatOption = Annotated[
    Literal["csv", "jsonl", "parquet"] | None,
    typer.Option(
        "--format",
        help="With --data: the file's format; default from its name.",
        rich_help_panel=PANEL,
    ),
]


def dataset_spec(
    spec: Path | None,
    data: Path | None,
    text_column: str,
    category_column: str | None = None,
    escalation_column: str | None = None,
    time_column: str | None = None,
    id_column: str | None = None,
    metadata_column: list[str] | None = None,
    split_column: str | None = None,
    file_format: Literal["csv", "jsonl", "parquet"] | None = None,
) -> DatasetSpec:
    """The spec a command reads: the spec file, or one built from --data and its columns."""
    if data is None:
        return load_spec(spec or DEFAULT_SPEC)
    if spec is not None:
        raise ValueError("pass either --spec or --data, not both")
    if not (category_column or escalation_column):
        raise ValueError(
            f"--data {data}: name at least one label, with --category-column or "
            "--escalation-column"
        )
    return spec_for_file(
        data,
        text_column=text_column,
        category_column=category_column,
        escalation_column=escalation_column,
        time_column=time_column,
        id_column=id_column,
        metadata_columns=metadata_column,
        split_column=split_column,
        format=file_format,
    )
