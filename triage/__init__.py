"""triage: score customer complaints for escalation likelihood and failure category.

The core library, importable without torch, FastAPI or a database::

    from triage import Complaint, Scorer

    scorer = Scorer("models/default")
    [prediction] = scorer.score([Complaint("I was charged twice and no one will refund me.")])
    prediction.escalation.probability, prediction.category.label
"""

from triage.bundle import Bundle as Bundle
from triage.bundle import Manifest as Manifest
from triage.bundle import load_bundle as load_bundle
from triage.errors import BundleError as BundleError
from triage.errors import DatasetSpecError as DatasetSpecError
from triage.errors import InvalidComplaintError as InvalidComplaintError
from triage.errors import TriageError as TriageError
from triage.scorer import Complaint as Complaint
from triage.scorer import Prediction as Prediction
from triage.scorer import Scorer as Scorer

__version__ = "0.1.0"

__all__ = [
    "Bundle",
    "BundleError",
    "Complaint",
    "DatasetSpecError",
    "InvalidComplaintError",
    "Manifest",
    "Prediction",
    "Scorer",
    "TriageError",
    "load_bundle",
]
