"""The model registry: which bundles exist, which one is champion, and who changed that when.

Bundles live in a registry folder (`TRIAGE_REGISTRY_DIR`); the database records each version's
status, metrics and training data, and a term for every stretch a version served as champion.
A promotion or rollback is one transaction, so there is never zero or two champions.
"""

from __future__ import annotations

import getpass
import logging
import shutil
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from serving.db.models import (
    CHALLENGER,
    CHAMPION,
    RETIRED,
    ChampionTerm,
    ModelVersion,
    utcnow,
)
from triage.bundle import load_bundle

logger = logging.getLogger(__name__)


class RegistryError(ValueError):
    """A registry request that cannot be done as asked; the message says why."""


def operator() -> str:
    """Who is acting when no `--by` is given: the operating-system user."""
    try:
        return getpass.getuser()
    except OSError:
        return "unknown"


def champion(session: Session) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.status == CHAMPION))


def versions(session: Session) -> list[ModelVersion]:
    return list(
        session.scalars(
            select(ModelVersion).order_by(
                ModelVersion.registered_at, ModelVersion.version
            )
        )
    )


def terms(session: Session) -> list[ChampionTerm]:
    return list(session.scalars(select(ChampionTerm).order_by(ChampionTerm.id)))


def register(
    session: Session,
    bundle_dir: Path,
    *,
    by: str,
    registry_dir: Path | None = None,
    metrics: dict | None = None,
    training_data: dict | None = None,
    checkpoint: str | None = None,
) -> ModelVersion:
    """Record a bundle as a challenger, copying it into `registry_dir` when given.

    The bundle is loaded first, so a broken one is refused before anything is recorded.
    """
    bundle = load_bundle(bundle_dir)
    if session.get(ModelVersion, bundle.version) is not None:
        raise RegistryError(f"version {bundle.version} is already registered")

    path = Path(bundle.path).resolve()
    if registry_dir is not None and registry_dir.resolve() not in path.parents:
        target = registry_dir / bundle.version
        if target.exists():
            raise RegistryError(
                f"{target} already exists; remove it or pick another version"
            )
        shutil.copytree(path, target)
        path = target.resolve()

    row = ModelVersion(
        version=bundle.version,
        path=str(path),
        status=CHALLENGER,
        metrics=metrics if metrics is not None else bundle.manifest.metrics,
        training_data=training_data
        if training_data is not None
        else bundle.manifest.dataset,
        checkpoint=checkpoint,
        trained_by=by,
        registered_at=utcnow(),
    )
    session.add(row)
    session.flush()
    logger.info("registered model %s (by %s)", row.version, by)
    return row


def promote(
    session: Session, version: str, *, by: str, reason: str = "promote"
) -> ModelVersion:
    """Make `version` the champion; the champion it replaces is retired."""
    row = session.get(ModelVersion, version)
    if row is None:
        raise RegistryError(
            f"no model version {version!r}; `triage models list` shows them"
        )
    current = champion(session)
    if current is not None and current.version == version:
        raise RegistryError(f"{version} is already the champion")

    now = utcnow()
    if current is not None:
        current.status = RETIRED
        open_term = session.scalar(
            select(ChampionTerm).where(
                ChampionTerm.version == current.version, ChampionTerm.ended_at.is_(None)
            )
        )
        if open_term is not None:
            open_term.ended_at = now
        session.flush()
    row.status, row.promoted_by, row.promoted_at = CHAMPION, by, now
    session.add(
        ChampionTerm(version=version, started_at=now, started_by=by, reason=reason)
    )
    session.flush()
    logger.info("model %s is champion (%s by %s)", version, reason, by)
    return row


def rollback(session: Session, *, by: str) -> ModelVersion:
    """Return to the champion before the current one."""
    current = champion(session)
    history = terms(session)
    earlier = [
        t.version for t in history if current is None or t.version != current.version
    ]
    if not earlier:
        raise RegistryError("there is no earlier champion to roll back to")
    return promote(session, earlier[-1], by=by, reason="rollback")


def ensure_champion(session: Session, bundle_dir: Path) -> ModelVersion:
    """The champion; on first start with an empty registry, `bundle_dir` becomes it."""
    current = champion(session)
    if current is not None:
        return current
    if session.scalar(select(ModelVersion.version).limit(1)) is not None:
        raise RegistryError(
            "the registry has versions but no champion; promote one with "
            "`triage models promote VERSION`"
        )
    register(session, bundle_dir, by="first start")
    version = load_bundle(bundle_dir).version
    logger.info("empty registry: %s from %s becomes the champion", version, bundle_dir)
    return promote(session, version, by="first start", reason="first start")
