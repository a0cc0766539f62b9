"""Similar resolved cases: nearest neighbours over the serving model's text embeddings.

Each case is embedded once per model version with the pooled embedding output of the serving
ONNX graph (text only, without metadata, so that similar means "the same kind of complaint",
not "the same company"), and the vector is stored in `case_embeddings` so a restart does not
embed every case again. Embedding happens off the scoring path: lazily, when the index is
brought up to date for a request that needs it.

The index lives in memory, one per process, for the model version serving now. It is rebuilt
when that version changes (a hot swap of the champion) and topped up when cases are resolved
or their text changes; search is an exact cosine product over the matrix (`triage.neighbours`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, selectinload

from serving.cases import text_digest
from serving.db.engine import Database
from serving.db.models import RESOLVED, Case, CaseEmbedding, CasePrediction
from serving.deps import database_reason
from triage.neighbours import NeighbourIndex
from triage.scorer import Complaint, Scorer

logger = logging.getLogger(__name__)

EMBED_BATCH = 16
SQL_CHUNK = 500


@dataclass(frozen=True)
class SimilarResult:
    """The similar cases found, how many resolved cases were searched, and how many were
    left to embed when the time budget ran out (a later request carries on)."""

    items: list[SimilarCase]
    searched: int
    pending: int


@dataclass(frozen=True)
class SimilarCase:
    """A resolved case like the one asked about, with what was done and learned."""

    case_id: str
    similarity: float
    category: str
    predicted_category: str | None
    escalated: bool
    root_cause: str
    resolution: str
    lesson: str
    resolved_at: datetime | None


def embed(scorer: Scorer, texts: Sequence[str]) -> np.ndarray:
    """Pooled text embeddings (n, dimensions) from the scorer's ONNX graph, text only."""
    return scorer.raw_scores([Complaint(text) for text in texts]).embedding


def _chunks(items: Sequence, size: int = SQL_CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _vector(row: CaseEmbedding) -> np.ndarray:
    return np.frombuffer(row.vector, dtype="<f4", count=row.dimensions)


def _latest_text_digest():
    """The digest of each case's current text: its latest prediction's."""
    return (
        select(CasePrediction.text_sha256)
        .where(CasePrediction.case_id == Case.id)
        .order_by(CasePrediction.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def store_embeddings(
    database: Database,
    version: str,
    items: Sequence[tuple[str, str]],
    vectors: np.ndarray,
) -> None:
    """Keep the vectors of (case id, text digest) pairs; a concurrent writer's rows win."""
    rows = [
        CaseEmbedding(
            case_id=case_id,
            model_version=version,
            text_sha256=digest,
            dimensions=int(vector.shape[0]),
            vector=np.asarray(vector, dtype="<f4").tobytes(),
        )
        for (case_id, digest), vector in zip(items, vectors, strict=True)
    ]
    ids = [case_id for case_id, _ in items]
    try:
        with database.session() as session, session.begin():
            session.execute(
                CaseEmbedding.__table__.delete().where(
                    CaseEmbedding.case_id.in_(ids),
                    CaseEmbedding.model_version == version,
                )
            )
            session.add_all(rows)
    except IntegrityError:
        logger.debug("another process stored these embeddings first; keeping theirs")


class SimilarCases:
    """The process's similar-cases index for the serving model version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.version: str | None = None
        self._index: NeighbourIndex | None = None
        self._members: dict[str, str] = {}
        self._snapshot: tuple | None = None

    def similar(
        self,
        database: Database,
        scorer: Scorer,
        case_id: str,
        limit: int,
        seconds: float,
    ) -> SimilarResult | None:
        """The `limit` resolved cases most like case `case_id`, best first; None when there
        is no such case. Embedding cases the index lacks stops after `seconds`.

        It opens its own short transactions, so call it outside any other write
        transaction (SQLite lets one writer at a time).
        """
        with database.session() as session:
            text = session.scalar(select(Case.text).where(Case.id == case_id))
        if text is None:
            return None
        with self._lock:
            pending = self._refresh(database, scorer, time.monotonic() + seconds)
            index = self._index
            vector = self._query_vector(database, scorer, case_id, text, index)
            hits = index.search(vector, limit, exclude={case_id})
            searched = len(index) - (case_id in index)
        with database.session() as session:
            return SimilarResult(_described(session, hits), searched, pending)

    def _refresh(self, database: Database, scorer: Scorer, deadline: float) -> int:
        """Bring the index in step with the resolved cases and the serving version;
        returns how many resolved cases are still to be embedded."""
        if self.version != scorer.version or self._index is None:
            logger.info("building the similar-cases index for model %s", scorer.version)
            self.version, self._members, self._snapshot = scorer.version, {}, None
            self._index = NeighbourIndex()
        with database.session() as session:
            snapshot = session.execute(
                select(func.count(Case.id), func.max(Case.updated_at)).where(
                    Case.status == RESOLVED
                )
            ).one()
            if tuple(snapshot) == self._snapshot:
                return 0
            current = dict(
                session.execute(
                    select(Case.id, _latest_text_digest()).where(
                        Case.status == RESOLVED
                    )
                ).all()
            )
        gone = [case_id for case_id in self._members if case_id not in current]
        wanted = {
            case_id: digest
            for case_id, digest in current.items()
            if self._members.get(case_id) != digest
        }
        self._index.remove(gone)
        for case_id in gone:
            del self._members[case_id]
        pending = self._add(database, scorer, wanted, deadline)
        # Unfinished work leaves the snapshot stale, so the next request carries on.
        self._snapshot = tuple(snapshot) if not pending else None
        return pending

    def _add(
        self,
        database: Database,
        scorer: Scorer,
        wanted: dict[str, str],
        deadline: float,
    ) -> int:
        """Add the `wanted` cases: stored vectors where their text is unchanged, new
        embeddings (stored batch by batch, until `deadline`) for the rest; one matrix
        update at the end. Returns how many are left to embed."""
        vectors = _stored_vectors(database, scorer.version, wanted)
        digests = {case_id: wanted[case_id] for case_id in vectors}
        missing = [case_id for case_id in wanted if case_id not in vectors]
        if missing:
            logger.info(
                "embedding %d resolved cases for model %s", len(missing), scorer.version
            )
        done = 0
        for batch in _chunks(missing, EMBED_BATCH):
            if time.monotonic() > deadline:
                break
            done += len(batch)
            with database.session() as session:
                texts = dict(
                    session.execute(
                        select(Case.id, Case.text).where(Case.id.in_(batch))
                    ).all()
                )
            ids = [case_id for case_id in batch if case_id in texts]
            if not ids:
                continue
            made = embed(scorer, [texts[i] for i in ids])
            pairs = [(i, text_digest(texts[i])) for i in ids]
            store_embeddings(database, scorer.version, pairs, made)
            vectors.update(zip(ids, made, strict=True))
            digests.update(pairs)
        if vectors:
            ids = list(vectors)
            self._index.upsert(ids, np.stack([vectors[i] for i in ids]))
            self._members.update(digests)
        return len(missing) - done

    def _query_vector(
        self,
        database: Database,
        scorer: Scorer,
        case_id: str,
        text: str,
        index: NeighbourIndex,
    ) -> np.ndarray:
        digest = text_digest(text)
        if case_id in index and self._members.get(case_id) == digest:
            return index.vector(case_id)
        stored = _stored_vectors(database, scorer.version, {case_id: digest})
        if case_id in stored:
            return stored[case_id]
        vector = embed(scorer, [text])[0]
        store_embeddings(database, scorer.version, [(case_id, digest)], vector[None])
        return vector


def _stored_vectors(
    database: Database, version: str, wanted: dict[str, str]
) -> dict[str, np.ndarray]:
    """Stored vectors of `version` whose text digest is still the case's."""
    found = {}
    with database.session() as session:
        for batch in _chunks(list(wanted)):
            rows = session.scalars(
                select(CaseEmbedding).where(
                    CaseEmbedding.model_version == version,
                    CaseEmbedding.case_id.in_(batch),
                )
            )
            for row in rows:
                if row.text_sha256 == wanted[row.case_id]:
                    found[row.case_id] = _vector(row)
    return found


def _described(session: Session, hits: list[tuple[str, float]]) -> list[SimilarCase]:
    """The hits with their current outcomes, in the hits' order."""
    cases = {
        case.id: case
        for case in session.scalars(
            select(Case)
            .where(Case.id.in_([case_id for case_id, _ in hits]))
            .options(selectinload(Case.outcomes))
        )
    }
    found = []
    for case_id, similarity in hits:
        case = cases.get(case_id)
        if case is None or not case.outcomes:
            continue
        outcome = case.outcomes[-1]
        found.append(
            SimilarCase(
                case_id=case.id,
                similarity=similarity,
                category=outcome.category,
                predicted_category=case.category,
                escalated=outcome.escalated,
                root_cause=outcome.root_cause,
                resolution=outcome.resolution,
                lesson=outcome.lesson,
                resolved_at=case.resolved_at,
            )
        )
    return found


_HOLDER_LOCK = threading.Lock()


def similar_cases_of(state) -> SimilarCases:
    """The app's index holder, made on first use (`state` is `app.state`)."""
    with _HOLDER_LOCK:
        holder = getattr(state, "similar_cases", None)
        if holder is None:
            holder = state.similar_cases = SimilarCases()
        return holder


def similar_for_page(state, case_id: str) -> tuple[SimilarResult | None, str | None]:
    """The similar resolved cases the review page shows with a case, or why there are none
    to show (`state` is `app.state`); None when TRIAGE_SIMILAR_CASES is 0, which hides the
    panel."""
    settings = state.settings
    if settings.similar_cases <= 0:
        return None, None
    empty = SimilarResult([], 0, 0)
    if state.scorer is None:
        return empty, "the model is not loaded yet"
    try:
        found = similar_cases_of(state).similar(
            state.database,
            state.scorer,
            case_id,
            settings.similar_cases,
            settings.similar_seconds,
        )
    except SQLAlchemyError as error:
        reason = database_reason(error)
        logger.warning("similar cases of %s failed: %s", case_id, reason)
        return empty, f"they could not be read ({reason})"
    return found or empty, None
