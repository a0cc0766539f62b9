"""The OpenAPI schema is a contract: a change to it must be deliberate.

After an intended API change, refresh the snapshot with
``TRIAGE_UPDATE_SNAPSHOTS=1 pytest tests/test_openapi.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fastapi.testclient import TestClient

from serving.app import create_app
from serving.settings import Settings

SNAPSHOT = Path(__file__).parent / "snapshots" / "openapi.json"


def test_openapi_schema_matches_the_snapshot(tiny_bundle):
    schema = (
        TestClient(create_app(Settings(model_dir=tiny_bundle)))
        .get("/openapi.json")
        .json()
    )
    if os.environ.get("TRIAGE_UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    assert schema == json.loads(SNAPSHOT.read_text())
