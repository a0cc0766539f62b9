"""Shared fixtures: a tiny randomly initialised bundle built once per session from real CFPB rows.

The tiny model has the real tokenizer and the real graph layout (both heads, the embedding) but
random 32-wide weights, so API and scorer tests run in milliseconds. Its predictions mean nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# Apps built by tests keep their default SQLite database and key file out of the checkout.
os.environ["TRIAGE_DATA_DIR"] = tempfile.mkdtemp(prefix="triage-test-data-")
POSTGRES_URL = os.environ.get(
    "TRIAGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

REPO = Path(__file__).resolve().parent.parent
CFPB_2023 = REPO / "data" / "cfpb" / "complaints_2023_with_narrative.csv.gz"
DEFAULT_BUNDLE = REPO / "models" / "default"

SPEC_HEAD = """
name = "cfpb-small"
attribution = "CFPB Consumer Complaint Database"
categories = ["credit_reporting", "debt_collection", "credit_card", "bank_account",
              "money_transfer", "mortgage", "consumer_loan"]
metadata_keys = ["company", "state", "tags"]

[[sources]]
path = "small.csv"
format = "csv"
text_column = "complaint_what_happened"
id_column = "complaint_id"
time_column = "date_received"
category_column = "product"
metadata_columns = ["company", "state", "tags"]

[sources.category_map]
"Credit reporting, credit repair services, or other personal consumer reports" = "credit_reporting"
"Credit reporting or other personal consumer reports" = "credit_reporting"
"Debt collection" = "debt_collection"
"Credit card or prepaid card" = "credit_card"
"Credit card" = "credit_card"
"Checking or savings account" = "bank_account"
"Money transfer, virtual currency, or money service" = "money_transfer"
"Mortgage" = "mortgage"
"Vehicle loan or lease" = "consumer_loan"
"Payday loan, title loan, or personal loan" = "consumer_loan"
"Student loan" = "consumer_loan"
"""

ESCALATION_RULE = """
[sources.escalation]
column = "company_response"
positive = ["Closed with monetary relief", "Closed with non-monetary relief"]
negative = ["Closed with explanation"]
unlabelled = ["In progress", "Untimely response"]
proxy = "company granted relief vs closed with explanation"
"""


def write_small_spec(folder: Path, rows: int = 240, escalation: bool = True) -> Path:
    """A spec over a sample of the real 2023 CFPB narratives, written into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.read_csv(CFPB_2023, dtype=str, keep_default_na=False)
    frame.sample(rows, random_state=0).to_csv(folder / "small.csv", index=False)
    spec = folder / "spec.toml"
    spec.write_text(SPEC_HEAD + (ESCALATION_RULE if escalation else ""))
    return spec


def build_tiny_bundle(
    folder: Path, escalation: bool = True, version: str = "tiny-test"
) -> Path:
    from training.args import TrainingArguments
    from training.export import export_run
    from training.finetune import train
    from training.tiny import write_tiny_base_model

    base = write_tiny_base_model(folder / "base")
    spec = write_small_spec(folder, escalation=escalation)
    run = train(
        TrainingArguments(
            spec=str(spec),
            output_dir=str(folder / "run"),
            base_model=str(base),
            epochs=1,
            threads=1,
            batch_size=32,
        )
    )
    return export_run(run, folder / "bundle", version=version, enforce_gate=False)


@pytest.fixture(autouse=True)
def own_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch):
    """Each test's apps get a database, registry and key file of their own."""
    monkeypatch.setenv("TRIAGE_DATA_DIR", str(tmp_path_factory.mktemp("data")))


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    logging.getLogger("root").setLevel(logging.WARNING)
    return build_tiny_bundle(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_category_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle whose dataset has no escalation label: category head only."""
    return build_tiny_bundle(
        tmp_path_factory.mktemp("tiny-category"),
        escalation=False,
        version="tiny-category-test",
    )


@pytest.fixture(scope="session")
def tiny_scorer(tiny_bundle: Path):
    from triage.scorer import Scorer

    return Scorer(tiny_bundle, threads=1)


@pytest.fixture(scope="session")
def flagging_scorer(tiny_bundle: Path):
    """The tiny model with threshold 0: every complaint it scores is flagged."""
    from triage.scorer import Scorer

    return Scorer(tiny_bundle, threads=1, threshold=0.0)


@pytest.fixture(scope="session")
def real_complaints() -> list[str]:
    frame = pd.read_csv(CFPB_2023, dtype=str, keep_default_na=False)
    return frame["complaint_what_happened"].head(40).tolist()


@pytest.fixture(scope="session")
def postgres_admin():
    """A connection to the PostgreSQL server the storage tests create databases on.

    An unreachable server fails the run: the storage tests must pass on both backends.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as error:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_URL} ({error.orig}); the storage "
            "tests run on it too: start it or point TRIAGE_TEST_POSTGRES_URL at one"
        )
    yield engine
    engine.dispose()


@contextlib.contextmanager
def postgres_database(admin):
    """A PostgreSQL database made for one test and dropped after it; yields its URL."""
    from sqlalchemy import text

    name = f"triage_test_{secrets.token_hex(6)}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path: Path):
    """An empty database of each backend: a SQLite file, or a PostgreSQL database made
    for this test and dropped after it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cases.sqlite3'}"
        return
    with postgres_database(request.getfixturevalue("postgres_admin")) as url:
        yield url


@pytest.fixture
def database(database_url: str):
    from serving.db.engine import Database

    database = Database(database_url)
    database.upgrade()
    yield database
    database.dispose()


def add_key(app, role: str, name: str | None = None) -> str:
    """Create a key of `role` in a running app's database and return it."""
    from serving.auth import create_key

    with app.state.database.session() as session, session.begin():
        _, key = create_key(session, name or f"test {role}", role)
    return key


def authorise(client, role: str = "caller", name: str | None = None) -> str:
    """Give a TestClient (inside its lifespan) a fresh key of `role`; returns the key."""
    key = add_key(client.app, role, name)
    client.headers["Authorization"] = f"Bearer {key}"
    return key


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cli_key(env: dict[str, str], role: str, name: str, *options: str) -> str:
    """A key made by `triage keys create` in the environment a test server will use."""
    triage = shutil.which("triage", path=str(Path(sys.executable).parent))
    done = subprocess.run(
        [triage, "keys", "create", "--role", role, "--name", name, *options],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@contextmanager
def served(env: dict[str, str], folder: Path) -> Iterator[str]:
    """`triage serve` on a free port with `env`, its log in `folder`/server.log; yields
    the base URL once it is ready and stops the server after."""
    triage = shutil.which("triage", path=str(Path(sys.executable).parent))
    port, log_path = free_port(), folder / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [triage, "serve", "--port", str(port)], env=env, stdout=log, stderr=log
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, log_path)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=30)


def wait_ready(base: str, log: Path, seconds: float = 60) -> None:
    """Wait for a server started by a test to answer /readyz; fail with its log if it never does."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    pytest.fail(f"the server was not ready in {seconds:.0f} s:\n{log.read_text()}")
