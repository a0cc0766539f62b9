"""The serving process never imports torch or transformers: at startup, scoring and
recording a case, explaining it, or rendering the review page."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, sys
from fastapi.testclient import TestClient
from serving.app import create_app
from serving.auth import create_key
with TestClient(create_app()) as client:
    with client.app.state.database.session() as session, session.begin():
        _, key = create_key(session, "probe", "admin")
    client.headers["Authorization"] = f"Bearer {key}"
    body = {"text": "I was charged twice.", "case_id": "probe-1"}
    codes = [
        client.post("/v1/triage", json=body).status_code,
        client.get("/v1/cases/probe-1/explanation").status_code,
        client.get("/review/sign-in").status_code,
    ]
    status = 200 if codes == [200, 200, 200] else codes
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "datasets", "training"))
print(json.dumps({"status": status, "heavy": heavy}))
"""


def test_serving_imports_no_torch(tiny_bundle, tmp_path):
    env = {
        **os.environ,
        "TRIAGE_MODEL_DIR": str(tiny_bundle),
        "TRIAGE_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"status": 200, "heavy": []}


def test_serving_starts_without_importing_scikit_learn_or_pandas():
    """They take over a second to import; the service needs them only for metrics it may
    never compute, so they are imported where used and stay out of the cold start."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys, serving.app, triage_cli.main; "
            "print(json.dumps(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('sklearn', 'pandas', 'scipy'))))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == []
