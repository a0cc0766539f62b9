"""Score complaints with a bundle's ONNX graph: the whole scoring path, free of torch.

The scorer takes a batch of complaints and returns a batch of predictions; a single request is a
batch of one. Work that can be done once (session, tokenizer, label tables) is done in the
constructor, so a call does only tokenization, the graph run and a little numpy.

Scoring has two steps so that a server can merge concurrent requests: `encode` checks and
tokenizes one request's complaints (any thread, in parallel), and `score_encoded` scores several
encoded requests in one call.

By default every chunk goes through the graph in a run of its own. int8 dynamic quantization
scales each run's activations together, so in a shared run a complaint's probabilities move with
its run mates (by a few hundredths on the default bundle: `benchmarks/model_bench.py` measures
the largest shift at 1, 4 and 16 windows a run); alone, a complaint gets the same score however
it was sent. On the 2-core development CPUs, larger runs
gained little, as activations soon outgrow a core's cache (`benchmarks/model_bench.py` measures
both). `chunk_batch` and `max_batch_tokens` allow larger runs where throughput matters more.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import onnxruntime as ort

from triage.aggregate import mean_by_complaint, sigmoid, softmax
from triage.bundle import Bundle, load_bundle
from triage.cpu import available_cpus
from triage.errors import BundleError, InvalidComplaintError
from triage.lexical import LexicalModel
from triage.text import (
    Chunk,
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
class EncodedComplaints:
    """One request's complaints, checked and split into model windows."""

    complaints: Sequence[Complaint]
    chunks: list[Chunk]

    @property
    def tokens(self) -> int:
        return sum(len(chunk.input_ids) for chunk in self.chunks)


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
        chunk_batch: at most this many chunks go through the graph in one run; see the module
            docstring before raising it.
        max_batch_tokens: at most this many padded tokens go through the graph in one run (a
            single longer chunk still runs alone).
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
        chunk_batch: int = 1,
        max_batch_tokens: int = 512,
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
        self.max_batch_tokens = max_batch_tokens
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

    def encode(self, complaints: Sequence[Complaint]) -> EncodedComplaints:
        """Check a request's complaints and split them into windows; raises on bad input."""
        if not complaints:
            raise InvalidComplaintError("no complaints to score")
        for index, complaint in enumerate(complaints):
            _check_complaint(index, complaint)

        chunks = self.encoder.chunks(
            [c.text for c in complaints], [c.metadata for c in complaints]
        )
        return EncodedComplaints(complaints, chunks)

    def raw_scores(self, complaints: Sequence[Complaint]) -> RawScores:
        """Aggregated, uncalibrated logits for a batch (also used to fit calibration)."""
        return self._raw(self.encode(complaints))

    def _raw(self, encoded: EncodedComplaints) -> RawScores:
        complaints, chunks = encoded.complaints, encoded.chunks
        outputs = self._run_chunks(chunks)

        index = np.array([c.complaint_index for c in chunks])
        weights = np.array([max(c.text_tokens, 1) for c in chunks], dtype=np.float64)
        merged = {
            name: mean_by_complaint(values, index, weights, len(complaints))
            for name, values in outputs.items()
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

    def _run_chunks(self, chunks: Sequence[Chunk]) -> dict[str, np.ndarray]:
        """Graph outputs for every chunk, in the chunks' order."""
        order = sorted(range(len(chunks)), key=lambda i: len(chunks[i].input_ids))
        outputs: dict[str, list[np.ndarray]] = {name: [] for name in self._output_names}
        for run in self._runs_of(order, chunks):
            batch = self.encoder.pad([chunks[i] for i in run])
            feed = {name: getattr(batch, name) for name in GRAPH_INPUTS}
            with self._runs:
                values = self.session.run(self._output_names, feed)
            for name, value in zip(self._output_names, values, strict=True):
                outputs[name].append(value)

        inverse = np.argsort(order)
        return {name: np.concatenate(parts)[inverse] for name, parts in outputs.items()}

    def _runs_of(self, order: list[int], chunks: Sequence[Chunk]) -> list[list[int]]:
        """Cut length-sorted chunks into runs within the row and padded-token limits."""
        runs: list[list[int]] = []
        current: list[int] = []
        for i in order:
            width = len(chunks[i].input_ids)  # the longest so far, as chunks are sorted
            full = len(current) >= self.chunk_batch
            if current and (full or (len(current) + 1) * width > self.max_batch_tokens):
                runs.append(current)
                current = []
            current.append(i)
        runs.append(current)
        return runs

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
        return self._predictions(self.encode(complaints))

    def score_encoded(
        self, requests: Sequence[EncodedComplaints]
    ) -> list[list[Prediction]]:
        """Score several encoded requests in one call; one list of predictions per request."""
        merged = _merge(requests)
        predictions = self._predictions(merged)

        results, start = [], 0
        for request in requests:
            results.append(predictions[start : start + len(request.complaints)])
            start += len(request.complaints)
        return results

    def _predictions(self, encoded: EncodedComplaints) -> list[Prediction]:
        complaints = encoded.complaints
        raw = self._raw(encoded)
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


def _check_complaint(index: int, complaint: Complaint) -> None:
    if not isinstance(complaint.text, str):
        raise InvalidComplaintError(
            f"complaint {index}: the text is {type(complaint.text).__name__}, not a string"
        )
    if complaint.metadata is not None and not isinstance(complaint.metadata, Mapping):
        raise InvalidComplaintError(
            f"complaint {index}: metadata is {type(complaint.metadata).__name__}; pass a "
            "dict of key to value, or None"
        )
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


def _merge(requests: Sequence[EncodedComplaints]) -> EncodedComplaints:
    """One request holding every request's complaints, chunk indices shifted to match."""
    if len(requests) == 1:
        return requests[0]

    complaints: list[Complaint] = []
    chunks: list[Chunk] = []
    for request in requests:
        offset = len(complaints)
        complaints.extend(request.complaints)
        chunks.extend(
            replace(chunk, complaint_index=chunk.complaint_index + offset)
            for chunk in request.chunks
        )
    return EncodedComplaints(complaints, chunks)


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
