"""Where a command's data comes from: a spec file, or one data file with its columns named.

`--spec data/specs/banking77.toml` reads a recipe written by hand; `--data complaints.csv
--text-column body --category-column reason` maps the columns of any CSV, JSONL or Parquet file
on the command line. Both end in the same `DatasetSpec`, read by the same loader, so a bad file
gets the same errors (naming the file, the missing column, the columns found and the flag to
map it) either way.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Literal

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


@dataclass(frozen=True)
class DataSource:
    """Where a command's rows come from: `--spec`, or `--data` with its columns named."""

    spec: Path | None = None
    data: Path | None = None
    text_column: str = "text"
    category_column: str | None = None
    escalation_column: str | None = None
    time_column: str | None = None
    id_column: str | None = None
    metadata_column: list[str] | None = None
    split_column: str | None = None
    file_format: Literal["csv", "jsonl", "parquet"] | None = None

    def dataset_spec(self) -> DatasetSpec:
        """The spec the command reads: the spec file, or one built from the file's columns."""
        if self.data is None:
            given = [
                "--" + f.name.replace("_", "-").replace("file-format", "format")
                for f in fields(self)
                if f.name not in ("spec", "data") and getattr(self, f.name) != f.default
            ]
            if given:
                raise ValueError(
                    f"{', '.join(given)} name the columns of a --data file; add --data FILE, "
                    "or leave them out to read the spec"
                )
            return load_spec(self.spec or DEFAULT_SPEC)
        if self.spec is not None:
            raise ValueError("pass either --spec or --data, not both")
        if not (self.category_column or self.escalation_column):
            raise ValueError(
                f"--data {self.data}: name at least one label, with --category-column or "
                "--escalation-column"
            )
        return spec_for_file(
            self.data,
            text_column=self.text_column,
            category_column=self.category_column,
            escalation_column=self.escalation_column,
            time_column=self.time_column,
            id_column=self.id_column,
            metadata_columns=self.metadata_column,
            split_column=self.split_column,
            format=self.file_format,
        )


# Each field of DataSource as a command-line flag, in the order `--help` lists them.
_FLAGS = {
    "spec": SpecOption,
    "data": DataOption,
    "text_column": TextColumn,
    "category_column": CategoryColumn,
    "escalation_column": EscalationColumn,
    "time_column": TimeColumn,
    "id_column": IdColumn,
    "metadata_column": MetadataColumn,
    "split_column": SplitColumn,
    "file_format": FormatOption,
}


def data_source_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a typer command the Data flags, handed to it as one `source: DataSource`.

    The command declares a `source: DataSource` parameter; typer sees the ten flags in its
    place, and the command receives them gathered. Every command that reads a dataset thus
    offers the same flags with the same help.
    """
    signature = inspect.signature(command, eval_str=True)
    defaults = {field.name: field.default for field in fields(DataSource)}
    flags = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=defaults[name],
            annotation=annotation,
        )
        for name, annotation in _FLAGS.items()
    ]
    parameters = []
    for parameter in signature.parameters.values():
        if parameter.name == "source":
            parameters.extend(flags)
        else:
            parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))
    if len(parameters) == len(signature.parameters):
        raise TypeError(f"{command.__name__} has no `source: DataSource` parameter")

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        source = DataSource(
            **{name: kwargs.pop(name) for name in _FLAGS if name in kwargs}
        )
        return command(*args, source=source, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=parameters)
    return wrapper
