"""The serving process never imports torch or transformers, at startup or on a request."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, sys
from fastapi.testclient import TestClient
from serving.app import create_app
with TestClient(create_app()) as client:
    status = client.post("/v1/triage", json={"text": "I was charged twice."}).status_code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "datasets", "training"))
print(json.dumps({"status": status, "heavy": heavy}))
"""


def test_serving_imports_no_torch(tiny_bundle):
    env = {**os.environ, "TRIAGE_MODEL_DIR": str(tiny_bundle)}
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
