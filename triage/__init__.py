"""triage: score customer complaints for escalation likelihood and failure category.

The core library, importable without torch, FastAPI or a database. The public API is small:
load a bundle, score texts, read a dataset and evaluate a bundle on it (docs/python-api.md)::

    from triage import evaluate, load_bundle, score_texts

    bundle = load_bundle("models/default")
    [prediction] = score_texts(bundle, ["I was charged twice and no one will refund me."])
    prediction.escalation.probability, prediction.category.label
    evaluate(bundle, "data/specs/cfpb.toml").metrics()["category"]["macro_f1"]
"""

from triage.bundle import Bundle as Bundle
from triage.bundle import Manifest as Manifest
from triage.bundle import load_bundle as load_bundle
from triage.data import SplitDataset as SplitDataset
from triage.data import read_dataset as read_dataset
from triage.datasets import DatasetSpec as DatasetSpec
from triage.datasets import spec_for_file as spec_for_file
from triage.errors import BundleError as BundleError
from triage.errors import DatasetSpecError as DatasetSpecError
from triage.errors import InvalidComplaintError as InvalidComplaintError
from triage.errors import TriageError as TriageError
from triage.evaluation import Evaluation as Evaluation
from triage.evaluation import evaluate as evaluate
from triage.evaluation import score_texts as score_texts
from triage.scorer import Complaint as Complaint
from triage.scorer import Prediction as Prediction
from triage.scorer import Scorer as Scorer

__version__ = "0.1.0"

__all__ = [
    "Bundle",
    "BundleError",
    "Complaint",
    "DatasetSpec",
    "DatasetSpecError",
    "Evaluation",
    "InvalidComplaintError",
    "Manifest",
    "Prediction",
    "Scorer",
    "SplitDataset",
    "TriageError",
    "evaluate",
    "load_bundle",
    "read_dataset",
    "score_texts",
    "spec_for_file",
]
