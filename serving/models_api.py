"""Admin routes for the model registry: what is registered, and a registry check right now."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from serving.deps import Admin, DatabaseDep
from serving.registry import terms, versions

router = APIRouter(tags=["models"])


class ModelVersionOut(BaseModel):
    version: str
    status: str
    path: str
    trained_by: str
    registered_at: str
    promoted_by: str | None
    promoted_at: str | None
    metrics: dict | None


class TermOut(BaseModel):
    version: str
    started_at: str
    ended_at: str | None
    started_by: str
    reason: str


class RegistryOut(BaseModel):
    serving: str | None
    versions: list[ModelVersionOut]
    history: list[TermOut]


class ReloadOut(BaseModel):
    model_version: str | None
    changed: bool
    error: str | None


@router.get("/v1/models", response_model=RegistryOut)
def registry(request: Request, database: DatabaseDep, _: Admin) -> RegistryOut:
    """Registered versions, which one is serving in this process, and who served when."""
    scorer = request.app.state.scorer
    with database.session() as session:
        listed = [
            ModelVersionOut(
                version=v.version,
                status=v.status,
                path=v.path,
                trained_by=v.trained_by,
                registered_at=v.registered_at.isoformat(),
                promoted_by=v.promoted_by,
                promoted_at=v.promoted_at.isoformat() if v.promoted_at else None,
                metrics=v.metrics,
            )
            for v in versions(session)
        ]
        history = [
            TermOut(
                version=t.version,
                started_at=t.started_at.isoformat(),
                ended_at=t.ended_at.isoformat() if t.ended_at else None,
                started_by=t.started_by,
                reason=t.reason,
            )
            for t in terms(session)
        ]
    return RegistryOut(
        serving=scorer.version if scorer else None, versions=listed, history=history
    )


@router.post("/v1/models/reload", response_model=ReloadOut)
def reload(request: Request, _: Admin) -> ReloadOut:
    """Check the registry now and swap to a new champion if there is one."""
    if not request.app.state.swaps_models:
        raise HTTPException(
            409,
            "this service does not swap models in place (it runs on Ray Serve, whose "
            "scorer replicas hold the model): deploy the new champion with "
            "`triage serve --ray`",
        )
    return ReloadOut(**request.app.state.holder.check())
