"""What every batch engine shares: an archive's format and columns, and scoring one table.

An archive is one file of complaints: CSV (optionally gzipped), JSON Lines or Parquet. Its
columns are checked before anything is scored, so a wrong column name fails at once with the
columns the file has and the flag that maps it. Scoring turns a pyarrow table of input rows
into a table of predictions, one row per complaint in the same order, keeping the id column
when there is one. Both engines call `score_table` on slices of the archive, and it scores
each complaint on its own, so local processes and Ray workers give the same predictions.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from triage.errors import InvalidComplaintError, TriageError
from triage.scorer import Complaint, EncodedComplaints, Prediction, Scorer

logger = logging.getLogger(__name__)

SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
PREDICTION_FIELDS = [
    pa.field("escalation_probability", pa.float64()),
    pa.field("flagged", pa.bool_()),
    pa.field("threshold", pa.float64()),
    pa.field("category", pa.string()),
    pa.field("category_probability", pa.float64()),
    pa.field("chunks", pa.int32()),
    pa.field("model_version", pa.string()),
    pa.field("error", pa.string()),
]


class ArchiveError(TriageError):
    """An archive cannot be read as asked: unknown format, missing column, output in the way."""


@dataclass(frozen=True)
class ArchiveColumns:
    """Which columns of an archive hold what.

    Args:
        text: the complaint text.
        id: a column copied unchanged into the output, to join predictions back to cases.
        metadata: model metadata key -> archive column (e.g. {"company": "company_name"}).
    """

    text: str = "text"
    id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def needed(self) -> list[str]:
        """The columns to read, each once, in a stable order."""
        names = [self.id] if self.id else []
        names += [self.text, *self.metadata.values()]
        return list(dict.fromkeys(names))


@dataclass(frozen=True)
class BatchJob:
    """One archive to score, as both engines take it.

    Args:
        archive: the CSV, JSONL or Parquet file.
        output: the directory the Parquet predictions go to.
        columns: which archive columns hold the text, the id and the metadata.
        bundle: the model bundle directory.
        workers: scoring processes (local) or actors (Ray), one `Scorer` each.
        rows_per_batch: rows handed to a worker at a time.
        threads_per_worker: onnxruntime threads of each worker's session.
        threshold: the flagging threshold; default the bundle's.
    """

    archive: Path
    output: Path
    columns: ArchiveColumns
    bundle: Path
    workers: int = 1
    rows_per_batch: int = 256
    threads_per_worker: int = 1
    threshold: float | None = None


def archive_format(path: Path) -> str:
    """ "csv", "jsonl" or "parquet", from the file name (a trailing .gz is allowed)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    kind = SUFFIXES.get(suffixes[-1]) if suffixes else None
    if kind is None:
        raise ArchiveError(
            f"{path}: cannot tell the format from its name; name it .csv, .csv.gz, .jsonl "
            "(.json) or .parquet"
        )
    if kind == "parquet" and path.suffix.lower() == ".gz":
        raise ArchiveError(f"{path}: Parquet compresses itself; do not gzip it")
    return kind


def column_names(path: Path) -> list[str]:
    """The archive's column names, read from its header, first record or schema."""
    if not path.is_file():
        raise ArchiveError(f"{path} does not exist or is not a file")
    kind = archive_format(path)
    if kind == "parquet":
        return list(pq.read_schema(path).names)
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as handle:
            if kind == "csv":
                return next(csv.reader(handle), [])
            first = handle.readline()
    except UnicodeDecodeError as error:
        raise ArchiveError(
            f"{path} is not UTF-8 text (byte {error.start} of its first lines): re-encode "
            "it as UTF-8, e.g. `iconv -f latin1 -t utf-8`"
        ) from None
    return list(pa_json.read_json(io.BytesIO(first.encode("utf-8"))).schema.names)


def resolve_columns(
    path: Path,
    text: str,
    id_column: str | None,
    metadata: Mapping[str, str] | None,
    model_keys: Sequence[str],
) -> ArchiveColumns:
    """Check the asked-for columns against the archive's; fill in the metadata columns.

    Without an explicit `metadata` mapping, every metadata key the model reads that the archive
    has as a column of the same name is used.
    """
    found = column_names(path)
    listed = ", ".join(found) or "none"
    wanted = [(text, "--text-column"), (id_column, "--id-column")]
    wanted += [(c, f"--metadata {k}=COLUMN") for k, c in (metadata or {}).items()]
    for column, flag in wanted:
        if column is not None and column not in found:
            raise ArchiveError(
                f"{path} has no column {column!r} (columns: {listed}); pass {flag} to "
                "name the column that holds it"
            )
    if metadata is None:
        metadata = {key: key for key in model_keys if key in found}
    logger.info(
        "%s: text from %r, id from %r, metadata %s", path, text, id_column, metadata
    )
    return ArchiveColumns(text, id_column, dict(metadata))


def csv_options(
    names: Sequence[str],
) -> tuple[pa_csv.ParseOptions, pa_csv.ConvertOptions]:
    """How to parse an archive CSV: quoted texts span lines, and every column stays text (a
    column that looks numeric in the first rows must not fail on a later row)."""
    parse = pa_csv.ParseOptions(newlines_in_values=True)
    convert = pa_csv.ConvertOptions(
        column_types={name: pa.string() for name in names},
        strings_can_be_null=False,
    )
    return parse, convert


def iter_tables(path: Path, columns: ArchiveColumns, rows: int) -> Iterator[pa.Table]:
    """The archive's needed columns in tables of at most `rows` rows, streamed in order."""
    kind = archive_format(path)
    if kind == "parquet":
        for batch in pq.ParquetFile(path).iter_batches(rows, columns=columns.needed):
            yield pa.Table.from_batches([batch])
        return
    try:
        if kind == "csv":
            parse, convert = csv_options(column_names(path))
            convert.include_columns = columns.needed
            reader = pa_csv.open_csv(
                pa.input_stream(str(path), compression="detect"),
                parse_options=parse,
                convert_options=convert,
            )
        else:
            reader = pa_json.open_json(pa.input_stream(str(path), compression="detect"))
        yield from _resliced(reader, columns.needed, rows)
    except pa.ArrowInvalid as error:
        raise ArchiveError(
            f"{path} cannot be read: {error}. Every value of a column must have one type "
            "(in JSONL, write each text as a JSON string), and the file must be UTF-8"
        ) from None


def _resliced(reader, names: list[str], rows: int) -> Iterator[pa.Table]:
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in reader:
        batch = batch.select(names)
        pending.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending)


def count_rows(path: Path) -> int | None:
    """The number of complaints when the format says it cheaply (Parquet), else None."""
    if archive_format(path) == "parquet":
        return pq.ParquetFile(path).metadata.num_rows
    return None


def score_table(scorer: Scorer, table: pa.Table, columns: ArchiveColumns) -> pa.Table:
    """Predictions for every row of `table`, in order; a row that cannot be scored gets
    null predictions and an `error` saying why, so one bad row never stops an archive."""
    complaints = complaints_of(table, columns)
    predictions, errors = _score_rows(scorer, complaints)
    return _prediction_table(table, columns, predictions, errors, scorer.version)


def complaints_of(table: pa.Table, columns: ArchiveColumns) -> list[Complaint | None]:
    """The table's rows as complaints (None where the text is empty); empty metadata values
    are left out, as a caller that does not know them would."""
    texts = table.column(columns.text).to_pylist()
    values = {
        key: table.column(column).to_pylist()
        for key, column in columns.metadata.items()
    }
    complaints: list[Complaint | None] = []
    for row, text in enumerate(texts):
        if not isinstance(text, str) or not text:
            complaints.append(None)
            continue
        metadata = {key: column[row] for key, column in values.items()}
        metadata = {k: v for k, v in metadata.items() if v is not None and v != ""}
        complaints.append(Complaint(text, metadata or None))
    return complaints


def _score_rows(
    scorer: Scorer, complaints: list[Complaint | None]
) -> tuple[list[Prediction | None], list[str | None]]:
    """Score a slice in one call, after checking each complaint on its own so that one bad row
    gets an error instead of failing its slice. The scorer runs every window alone (int8
    scales activations per run), so a prediction does not depend on which complaints shared
    its slice: an archive scored on Ray, on local processes or in slices of another size
    gives the same predictions."""
    errors: list[str | None] = [None] * len(complaints)
    encoded: list[EncodedComplaints] = []
    rows: list[int] = []
    for i, complaint in enumerate(complaints):
        if complaint is None:
            errors[i] = "the text column is empty"
            continue
        try:
            encoded.append(scorer.encode([complaint]))
        except InvalidComplaintError as error:
            errors[i] = re.sub(r"^complaint \d+", "complaint", str(error))
            continue
        rows.append(i)

    predictions: list[Prediction | None] = [None] * len(complaints)
    if encoded:
        for i, [prediction] in zip(rows, scorer.score_encoded(encoded), strict=True):
            predictions[i] = prediction
    return predictions, errors


def _prediction_table(
    table: pa.Table,
    columns: ArchiveColumns,
    predictions: list[Prediction | None],
    errors: list[str | None],
    version: str,
) -> pa.Table:
    escalations = [p.escalation if p else None for p in predictions]
    categories = [p.category if p else None for p in predictions]
    values = {
        "escalation_probability": [e.probability if e else None for e in escalations],
        "flagged": [e.flagged if e else None for e in escalations],
        "threshold": [e.threshold if e else None for e in escalations],
        "category": [c.label if c else None for c in categories],
        "category_probability": [c.probability if c else None for c in categories],
        "chunks": [p.chunks if p else None for p in predictions],
        "model_version": [version] * len(predictions),
        "error": errors,
    }
    arrays = [pa.array(values[f.name], type=f.type) for f in PREDICTION_FIELDS]
    schema = pa.schema(PREDICTION_FIELDS)
    if columns.id:
        arrays.insert(0, table.column(columns.id).combine_chunks())
        schema = schema.insert(0, table.schema.field(columns.id))
    return pa.Table.from_arrays(arrays, schema=schema)


def prepare_output(output: Path, overwrite: bool) -> None:
    """Refuse to mix a new run's files with an old run's; with `overwrite`, remove the old
    run's Parquet files first."""
    if output.exists() and not output.is_dir():
        raise ArchiveError(f"{output} is a file; the output is a directory of Parquet")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise ArchiveError(
            f"{output} already holds files; pass --overwrite to replace them, or choose "
            "another output directory"
        )
    for old in output.glob("*.parquet") if overwrite and output.is_dir() else ():
        old.unlink()


@dataclass(frozen=True)
class BatchSummary:
    """What a batch run did, for the command's closing line and the benchmarks."""

    engine: str
    workers: int
    complaints: int
    errors: int
    seconds: float
    model_version: str
    output: str

    @property
    def per_second(self) -> float:
        return self.complaints / self.seconds if self.seconds > 0 else 0.0


def summarise_output(
    output: Path, engine: str, workers: int, seconds: float, model_version: str
) -> BatchSummary:
    """Count what an engine wrote (rows and rows with an error) from the Parquet itself."""
    errors = pq.read_table(output, columns=["error"]).column("error")
    return BatchSummary(
        engine=engine,
        workers=workers,
        complaints=len(errors),
        errors=len(errors) - errors.null_count,
        seconds=seconds,
        model_version=model_version,
        output=str(output),
    )
