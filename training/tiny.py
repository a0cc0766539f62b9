"""A tiny randomly initialised BERT with the real MiniLM tokenizer, for fast tests.

Speed and shapes are all that tests need from it; its predictions mean nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from transformers import BertConfig, BertModel

from training.model import base_model_dir


def write_tiny_base_model(
    path: Path, hidden: int = 32, layers: int = 2, heads: int = 2, seed: int = 0
) -> Path:
    """Write config, random weights and the MiniLM tokenizer to `path`; returns `path`."""
    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 4,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(str(path))
    shutil.copy(base_model_dir() / "tokenizer.json", path / "tokenizer.json")
    return path
