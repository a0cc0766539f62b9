"""No secret and no complaint text in the logs, at any level, through a whole session: key
creation, scoring and recording, outcomes, explanation, sign-in and the review page."""

from __future__ import annotations

import logging
import re

from fastapi.testclient import TestClient

from serving.app import create_app
from serving.settings import Settings
from tests.conftest import add_key

TEXT = "Quetzalcoatl-unique-complaint-text about my escrow"
LESSON = "Ocelot-unique-lesson-text"


def test_secrets_and_complaint_text_never_reach_the_logs(
    tiny_bundle, flagging_scorer, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    settings = Settings(
        model_dir=tiny_bundle, data_dir=tmp_path, session_secret="s3cret-x"
    )
    with TestClient(create_app(settings, scorer=flagging_scorer)) as client:
        admin = add_key(client.app, "admin")
        auth = {"Authorization": f"Bearer {admin}"}
        created = client.post(
            "/v1/keys", json={"name": "m", "role": "manager"}, headers=auth
        )
        manager = created.json()["key"]
        headers = {"Authorization": f"Bearer {manager}"}
        body = {"text": TEXT, "case_id": "log-1", "metadata": {"company": TEXT}}
        client.post("/v1/triage", json=body, headers=headers)
        outcome = {"escalated": True, "category": "fees", "lesson": LESSON}
        client.post("/v1/cases/log-1/outcome", json=outcome, headers=headers)
        client.get("/v1/cases/log-1/explanation", headers=headers)
        form = client.get("/review/sign-in").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
        client.post("/review/sign-in", data={"key": manager, "csrf": csrf})
        client.get("/review/cases/log-1")
        client.post(
            "/v1/triage", json={"text": TEXT}, headers={"Authorization": "Bearer x"}
        )

    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "signed in" in logged and "recorded outcome" in logged
    for secret in (admin, manager, manager.split("_")[2], "s3cret-x", TEXT, LESSON):
        assert secret not in logged
