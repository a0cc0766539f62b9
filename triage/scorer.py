"""Score complaints with a bundle's ONNX graph: the whole scoring path, free of torch.

The scorer takes a batch of complaints and returns a batch of predictions; a single request is a
batch of one. Work that can be done once (session, tokenizer, label tables) is done in the
constructor, so a call does only tokenization, the graph run and a little numpy.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnxruntime as ort

from triage.aggregate import mean_by_complaint, sigmoid, softmax
from triage.bundle import Bundle, load_bundle
from triage.cpu import available_cpus
from triage.errors import BundleError, InvalidComplaintError
from triage.lexical import LexicalModel
from triage.text import (
    ComplaintEncoder,
    has_readable_text,
    load_tokenizer,
    unicode_problem,
)

logger = logging.getLogger(__name__)

GRAPH_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class Complaint:
    """A complaint's text with the caller's optional metadata."""

    text: str
    metadata: Mapping[str, object] | None = None


@dataclass(frozen=True)
class LabelScore:
    label: str
    probability: float


@dataclass(frozen=True)
class EscalationScore:
    probability: float
    flagged: bool
    threshold: float


@dataclass(frozen=True)
class CategoryScore:
    label: str
    probability: float
    top: list[LabelScore]


@dataclass(frozen=True)
class Prediction:
    """What one model version said about one complaint."""

    escalation: EscalationScore | None
    category: CategoryScore | None
    model_version: str
    chunks: int
    ignored_metadata: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RawScores:
    """Per-complaint logits before the final temperature, and the pooled text embeddings.

    `escalation` and `category` are what the bundle serves (the encoder's logits, blended with
    the lexical model's where the bundle says so); `encoder_*` are the encoder's own.
    """

    escalation: np.ndarray | None
    category: np.ndarray | None
    embedding: np.ndarray
    chunks: np.ndarray
    encoder_escalation: np.ndarray | None
    encoder_category: np.ndarray | None


class Scorer:
    """Run a bundle on batches of complaints.

    Args:
        bundle: a loaded bundle, or the path of one.
        threads: onnxruntime intra-op threads; None lets onnxruntime decide.
        threshold: escalation threshold to flag at, instead of the bundle's default.
        chunk_batch: how many chunks go through the graph at once.
        top_k: how many categories each prediction lists.
        max_concurrent_runs: graph runs allowed at the same time, across threads; default
            the CPUs this process may use. More runs than cores add no throughput, and each
            holds its own intermediate buffers, so a cap keeps memory bounded under load.
    """

    def __init__(
        self,
        bundle: Bundle | str | os.PathLike,
        threads: int | None = None,
        threshold: float | None = None,
        chunk_batch: int = 32,
        top_k: int = 3,
        max_concurrent_runs: int | None = None,
    ) -> None:
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        manifest = self.bundle.manifest
        self.encoder = ComplaintEncoder(
            load_tokenizer(self.bundle.tokenizer_path),
            manifest.max_tokens,
            manifest.chunk_overlap,
            manifest.metadata_keys,
        )
        self.session, self._output_names = _open_session(self.bundle, threads)
        self.lexical = (
            LexicalModel.load(self.bundle.lexical_path) if manifest.blend else None
        )
        self.threshold = threshold if threshold is not None else manifest.threshold
        self.chunk_batch = chunk_batch
        self.top_k = max(1, min(top_k, len(manifest.categories) or 1))
        self.threads = threads
        self.max_concurrent_runs = max_concurrent_runs or available_cpus()
        self._runs = threading.BoundedSemaphore(self.max_concurrent_runs)
        self._check_outputs()
        logger.info("loaded model %s from %s", self.version, self.bundle.path)

    def _check_outputs(self) -> None:
        """Run one probe complaint so a graph that disagrees with its manifest fails now."""
        raw = self.raw_scores([Complaint("probe")])
        n_categories = len(self.bundle.manifest.categories)
        if raw.category is not None and raw.category.shape[1] != n_categories:
            raise BundleError(
                f"{self.bundle.model_path}: category head has {raw.category.shape[1]} outputs, "
                f"the manifest lists {n_categories} categories"
            )

    @property
    def version(self) -> str:
        return self.bundle.version

    def raw_scores(self, complaints: Sequence[Complaint]) -> RawScores:
        """Aggregated, uncalibrated logits for a batch (also used to fit calibration)."""
        if not complaints:
            raise InvalidComplaintError("no complaints to score")
        for index, complaint in enumerate(complaints):
            if not complaint.text or not has_readable_text(complaint.text):
                raise InvalidComplaintError(
                    f"complaint {index} has no readable text (empty, spaces or control characters)"
                )
            problem = unicode_problem(complaint.text)
            if problem:
                raise InvalidComplaintError(f"complaint {index}: text {problem}")
            for key, value in (complaint.metadata or {}).items():
                problem = unicode_problem(key) or (
                    unicode_problem(value) if isinstance(value, str) else None
                )
                if problem:
                    raise InvalidComplaintError(
                        f"complaint {index}: a metadata key or value {problem}"
                    )

        chunks = self.encoder.chunks(
            [c.text for c in complaints], [c.metadata for c in complaints]
        )
        order = sorted(range(len(chunks)), key=lambda i: len(chunks[i].input_ids))
        outputs: dict[str, list[np.ndarray]] = {name: [] for name in self._output_names}
        for start in range(0, len(order), self.chunk_batch):
            batch = self.encoder.pad(
                [chunks[i] for i in order[start : start + self.chunk_batch]]
            )
            feed = {name: getattr(batch, name) for name in GRAPH_INPUTS}
            with self._runs:
                values = self.session.run(self._output_names, feed)
            for name, value in zip(self._output_names, values, strict=True):
                outputs[name].append(value)

        inverse = np.argsort(order)
        index = np.array([c.complaint_index for c in chunks])
        weights = np.array([max(c.text_tokens, 1) for c in chunks], dtype=np.float64)
        merged = {
            name: mean_by_complaint(
                np.concatenate(parts)[inverse], index, weights, len(complaints)
            )
            for name, parts in outputs.items()
        }
        escalation, category = (
            merged.get("escalation_logit"),
            merged.get("category_logits"),
        )
        lexical = self._lexical_logits(complaints)
        return RawScores(
            escalation=self._blend("escalation", escalation, lexical),
            category=self._blend("category", category, lexical),
            embedding=merged["embedding"],
            chunks=np.bincount(index, minlength=len(complaints)),
            encoder_escalation=escalation,
            encoder_category=category,
        )

    def _lexical_logits(self, complaints: Sequence[Complaint]) -> dict[str, np.ndarray]:
        """The lexical model's outputs for the heads the bundle blends, featurised once."""
        blend = self.bundle.manifest.blend or {}
        if self.lexical is None or not blend:
            return {}
        heads = [head for head in blend if head in self.lexical.heads]
        texts, metadata = [c.text for c in complaints], [c.metadata for c in complaints]
        return self.lexical.all_logits(texts, metadata, heads=heads)

    def _blend(
        self, head: str, logits: np.ndarray | None, lexical: dict[str, np.ndarray]
    ) -> np.ndarray | None:
        blend = (self.bundle.manifest.blend or {}).get(head)
        if logits is None or blend is None or head not in lexical:
            return logits
        other = lexical[head][:, 0] if head == "escalation" else lexical[head]
        w = blend.encoder_weight
        return w * logits / blend.encoder_temperature + (1.0 - w) * other

    def probabilities(
        self, complaints: Sequence[Complaint]
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Calibrated escalation probabilities (n,) and category distributions (n, labels)."""
        raw = self.raw_scores(complaints)
        return self.calibrated(raw)

    def calibrated(self, raw: RawScores) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Apply the bundle's temperatures to `raw` (from `raw_scores`)."""
        temperatures = self.bundle.manifest.temperatures
        escalation = category = None
        if raw.escalation is not None:
            escalation = sigmoid(raw.escalation / (temperatures.escalation or 1.0))
        if raw.category is not None:
            category = softmax(raw.category / (temperatures.category or 1.0))
        return escalation, category

    def score(self, complaints: Sequence[Complaint]) -> list[Prediction]:
        """Calibrated predictions for a batch of complaints, in order."""
        raw = self.raw_scores(complaints)
        escalation, category = self.calibrated(raw)
        known = set(self.bundle.manifest.metadata_keys)

        predictions = []
        for i, complaint in enumerate(complaints):
            predictions.append(
                Prediction(
                    escalation=self._escalation(escalation[i])
                    if escalation is not None
                    else None,
                    category=self._category(category[i])
                    if category is not None
                    else None,
                    model_version=self.version,
                    chunks=int(raw.chunks[i]),
                    ignored_metadata=sorted(set(complaint.metadata or {}) - known),
                )
            )
        return predictions

    def _escalation(self, probability: float) -> EscalationScore:
        threshold = float(self.threshold)
        return EscalationScore(
            float(probability), bool(probability >= threshold), threshold
        )

    def _category(self, probabilities: np.ndarray) -> CategoryScore:
        labels = self.bundle.manifest.categories
        ranked = np.argsort(-probabilities, kind="stable")[: self.top_k]
        top = [LabelScore(labels[j], float(probabilities[j])) for j in ranked]
        return CategoryScore(top[0].label, top[0].probability, top)


def _open_session(
    bundle: Bundle, threads: int | None
) -> tuple[ort.InferenceSession, list[str]]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # onnxruntime keeps a memory plan per input shape it has seen; complaints come in every
    # length and batch size, so the plans pile up and the process grows without bound.
    options.enable_mem_pattern = False
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1

    try:
        session = ort.InferenceSession(
            str(bundle.model_path), options, providers=["CPUExecutionProvider"]
        )
    except (
        Exception
    ) as error:  # onnxruntime raises its own untyped errors for bad graphs
        raise BundleError(
            f"{bundle.model_path}: onnxruntime cannot load it ({error})"
        ) from None

    manifest = bundle.manifest
    inputs = {i.name for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    expected = ["embedding"]
    expected += ["escalation_logit"] if manifest.escalation else []
    expected += ["category_logits"] if manifest.categories else []
    if set(GRAPH_INPUTS) - inputs or set(expected) - set(outputs):
        raise BundleError(
            f"{bundle.model_path}: graph has inputs {sorted(inputs)} and outputs {outputs}; the "
            f"manifest needs inputs {list(GRAPH_INPUTS)} and outputs {expected}"
        )
    return session, expected
