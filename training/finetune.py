"""Fine-tune the two-head classifier on a dataset spec, with checkpoints and resume.

Usage: ``triage train --spec data/specs/cfpb.toml --output runs/cfpb`` (add ``--resume`` to go
on after an interruption). A run on 2 CPU cores takes about an hour, so the loop saves a
checkpoint every ``checkpoint_every`` steps and at each epoch end; the best epoch by validation
score is kept in ``best.pt`` for export.

Steps: 1. read and split the data; 2. build the model and tokenizer; 3. train with class-weighted
losses and random metadata dropout; 4. score the validation split after each epoch (whole texts,
chunked exactly as at serving time) and stop early when it no longer improves.

Under ``torchrun --nproc_per_node N`` the same command trains N data-parallel replicas (see
`training.distributed`); the run directory then also holds ``distributed.json`` with every
replica's parameter digest at the start and at the end.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from torch import nn

from training import distributed
from training.args import TrainingArguments
from training.data import LoadedDataset, load_dataset
from training.model import TwoHeadClassifier, base_model_dir
from triage.aggregate import mean_by_complaint, sigmoid
from triage.datasets import load_spec
from triage.metrics import category_metrics, escalation_metrics
from triage.text import ComplaintEncoder, load_tokenizer

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"


@dataclass
class TrainingState:
    """What a checkpoint holds beyond weights: where the run is and how it has gone."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best_score: float = -1.0
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list | None = None
    finished: bool = False


def _encoder_for(
    args: TrainingArguments, base: Path, metadata_keys: list[str]
) -> ComplaintEncoder:
    tokenizer = load_tokenizer(base / "tokenizer.json")
    return ComplaintEncoder(
        tokenizer, args.max_tokens, args.chunk_overlap, metadata_keys
    )


def _tensors(encoder: ComplaintEncoder, chunks) -> dict[str, torch.Tensor]:
    batch = encoder.pad(chunks)
    return {
        "input_ids": torch.from_numpy(batch.input_ids),
        "attention_mask": torch.from_numpy(batch.attention_mask),
        "token_type_ids": torch.from_numpy(batch.token_type_ids),
    }


def _drop_metadata(
    metadata: list[dict], args: TrainingArguments, rng: np.random.Generator
) -> list:
    """Hide all metadata from some examples and single keys from others, so the model works
    for a caller that sends none (a call center will not send CFPB's columns)."""
    kept = []
    for item in metadata:
        if rng.random() < args.metadata_dropout:
            kept.append(None)
        else:
            kept.append(
                {k: v for k, v in item.items() if rng.random() >= args.key_dropout}
            )
    return kept


def _epoch_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Shuffle, then sort within pools of 50 batches by length to cut padding."""
    order = rng.permutation(len(lengths))
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        members = order[start : start + pool]
        members = members[np.argsort(lengths[members], kind="stable")]
        batches.extend(
            members[i : i + batch_size] for i in range(0, len(members), batch_size)
        )
    rng.shuffle(batches)
    return batches


def _class_weights(labels: np.ndarray, n: int) -> torch.Tensor:
    counts = np.bincount(labels[labels >= 0], minlength=n).astype(float)
    weights = counts.sum() / (n * np.maximum(counts, 1.0))
    return torch.tensor(weights, dtype=torch.float32)


@torch.no_grad()
def predict_logits(
    model: TwoHeadClassifier,
    encoder: ComplaintEncoder,
    texts: list[str],
    metadata: list[dict | None],
    batch_size: int,
) -> dict[str, np.ndarray]:
    """Chunk, run and aggregate exactly as the ONNX scorer does, in torch (for validation)."""
    model.eval()
    chunks = encoder.chunks(texts, metadata)
    order = sorted(range(len(chunks)), key=lambda i: len(chunks[i].input_ids))
    outputs: dict[str, list] = {"escalation": [], "category": [], "embedding": []}
    for start in range(0, len(order), batch_size):
        piece = [chunks[i] for i in order[start : start + batch_size]]
        embedding, escalation, category = model(**_tensors(encoder, piece))
        outputs["embedding"].append(embedding.numpy())
        if escalation is not None:
            outputs["escalation"].append(escalation.numpy())
        if category is not None:
            outputs["category"].append(category.numpy())

    inverse = np.argsort(order)
    index = np.array([c.complaint_index for c in chunks])
    weights = np.array([max(c.text_tokens, 1) for c in chunks], dtype=float)
    result = {}
    for name, parts in outputs.items():
        if parts:
            stacked = np.concatenate(parts)[inverse]
            result[name] = mean_by_complaint(stacked, index, weights, len(texts))
    return result


def validation_score(
    data: LoadedDataset, logits: dict[str, np.ndarray], split: str
) -> dict:
    """The early-stopping score: mean of escalation PR-AUC and category macro-F1 (those present)."""
    rows = data.splits[split]
    metrics: dict[str, object] = {}
    parts = []
    if "escalation" in logits:
        y = np.array(rows["escalation"])
        known = y >= 0
        metrics["escalation"] = escalation_metrics(
            y[known], sigmoid(logits["escalation"][known])
        )
        parts.append(metrics["escalation"]["pr_auc"])
    if "category" in logits:
        y = np.array(rows["category"])
        known = y >= 0
        predicted = logits["category"][known].argmax(axis=1)
        metrics["category"] = category_metrics(y[known], predicted, data.categories)
        parts.append(metrics["category"]["macro_f1"])
    metrics["score"] = float(np.mean(parts))
    return metrics


def _start_from(model: TwoHeadClassifier, checkpoint: Path) -> None:
    """Load an earlier run's weights wherever the shapes agree (a head whose label set grew
    starts fresh), so a retrain continues from the champion instead of the base weights."""
    saved = torch.load(checkpoint, weights_only=False)["model"]
    own = model.state_dict()
    usable = {k: v for k, v in saved.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(usable, strict=False)
    logger.info(
        "started from %s: %d of %d tensors (the rest keep their fresh values)",
        checkpoint,
        len(usable),
        len(own),
    )


def _save(path: Path, payload: dict) -> None:
    temporary = path.with_suffix(".tmp")
    torch.save(payload, temporary)
    temporary.replace(path)


def train(args: TrainingArguments, resume: bool = False) -> Path:
    """Run (or resume) fine-tuning; returns the run directory holding `best.pt`."""
    output = Path(args.output_dir)
    checkpoint_path = output / CHECKPOINT
    if resume:
        if not checkpoint_path.exists():
            raise FileNotFoundError(
                f"nothing to resume: {checkpoint_path} does not exist"
            )
        saved = torch.load(checkpoint_path, weights_only=False)
        args = TrainingArguments.from_json(saved["args"])
        logger.info(
            "resuming %s at epoch %d step %d",
            output,
            saved["state"]["epoch"],
            saved["state"]["step_in_epoch"],
        )
    elif checkpoint_path.exists():
        raise FileExistsError(
            f"{output} already holds a run: pass --resume, or choose another --output"
        )
    replicas = distributed.start()
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)

    # 1. Data (read before anything is written, so a bad spec leaves no empty run behind)
    spec = load_spec(Path(args.spec))
    data = load_dataset(spec)
    output.mkdir(parents=True, exist_ok=True)
    train_rows = data.splits["train"]
    if args.max_train_rows and len(train_rows) > args.max_train_rows:
        train_rows = train_rows.shuffle(seed=args.seed).select(
            range(args.max_train_rows)
        )
    texts, metadata = train_rows["text"], train_rows["metadata"]
    escalation = np.array(train_rows["escalation"])
    category = np.array(train_rows["category"])

    # 2. Model and tokenizer
    base = Path(args.base_model) if args.base_model else base_model_dir()
    encoder = _encoder_for(args, base, spec.metadata_keys)
    n_categories = len(data.categories) if spec.has_category else 0
    model = TwoHeadClassifier.from_base(base, n_categories, spec.has_escalation)
    if args.init_from and not resume:
        _start_from(model, Path(args.init_from))
    if replicas.is_main:
        _write_run_files(output, args, base, data)

    heads = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    body = [p for n, p in model.named_parameters() if n.startswith("encoder.")]
    optimizer = torch.optim.AdamW(
        [
            {"params": body, "lr": args.learning_rate},
            {"params": heads, "lr": args.head_learning_rate},
        ],
        weight_decay=args.weight_decay,
    )
    # Under torchrun each replica takes its share of the batches: fewer steps each.
    steps_per_epoch = max(1, -(-len(texts) // args.batch_size) // replicas.world_size)
    total_steps = steps_per_epoch * args.epochs
    warmup = max(1, int(total_steps * args.warmup_ratio))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min(
            (step + 1) / warmup,
            max(0.0, (total_steps - step) / max(1, total_steps - warmup)),
        ),
    )

    escalation_known = escalation >= 0
    positives = max(int((escalation == 1).sum()), 1)
    pos_weight = torch.tensor(
        (escalation_known.sum() - positives) / positives, dtype=torch.float32
    )
    escalation_loss = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    category_loss = nn.CrossEntropyLoss(
        weight=_class_weights(category, max(n_categories, 1))
    )

    state = TrainingState(history=[])
    if resume:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state = TrainingState(**saved["state"])
        torch.set_rng_state(saved["torch_rng"])
        if state.finished:
            logger.info("run %s had already finished", output)
            return output

    lengths = np.array(
        [
            len(e.ids)
            for e in encoder.tokenizer.encode_batch(texts, add_special_tokens=False)
        ]
    )

    def checkpoint() -> None:
        if not replicas.is_main:
            return
        _save(
            checkpoint_path,
            {
                "args": args.to_json(),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "state": state.__dict__,
                "torch_rng": torch.get_rng_state(),
            },
        )

    # 3. Train (under torchrun, each replica on its share of every epoch's batches)
    trained = distributed.wrap(model, replicas)
    digest_at_start = distributed.replica_digests(model, replicas)
    logger.info(
        "training on %d complaints, %d steps per epoch, %d threads, %d replicas",
        len(texts),
        steps_per_epoch,
        threads,
        replicas.world_size,
    )
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, disable=not replicas.is_main) as progress:
        while state.epoch < args.epochs and not state.finished:
            rng = np.random.default_rng(args.seed + state.epoch)
            batches = _epoch_batches(
                np.minimum(lengths, args.max_tokens), args.batch_size, rng
            )
            batches = distributed.shard(batches, replicas)
            dropped = _drop_metadata(list(metadata), args, rng)
            task = progress.add_task(
                f"epoch {state.epoch + 1}/{args.epochs}",
                total=len(batches),
                completed=state.step_in_epoch,
                loss=0.0,
            )
            trained.train()
            running = []
            for step in range(state.step_in_epoch, len(batches)):
                members = batches[step]
                chunks = encoder.chunks(
                    [texts[i] for i in members],
                    [dropped[i] for i in members],
                    max_chunks=1,
                )
                _, escalation_logit, category_logits = trained(
                    **_tensors(encoder, chunks)
                )

                loss = torch.zeros(())
                y_escalation = torch.from_numpy(escalation[members])
                known = y_escalation >= 0
                if escalation_logit is not None and known.any():
                    loss = loss + escalation_loss(
                        escalation_logit[known], y_escalation[known].float()
                    )
                y_category = torch.from_numpy(category[members])
                known = y_category >= 0
                if category_logits is not None and known.any():
                    loss = loss + category_loss(
                        category_logits[known], y_category[known]
                    )

                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()

                running.append(loss.item())
                state.step_in_epoch, state.global_step = step + 1, state.global_step + 1
                progress.update(task, advance=1, loss=float(np.mean(running[-50:])))
                if state.global_step % args.checkpoint_every == 0:
                    checkpoint()
            progress.remove_task(task)

            # 4. Validate and stop early (rank 0 decides; the other replicas follow)
            if replicas.is_main:
                _validate(model, encoder, data, args, state, running, output)
            state.epoch, state.step_in_epoch = state.epoch + 1, 0
            state.finished = distributed.agree(state.finished, replicas)
            checkpoint()

    state.finished = True
    checkpoint()
    digest_at_end = distributed.replica_digests(model, replicas)
    if replicas.is_main:
        (output / "history.json").write_text(json.dumps(state.history, indent=2))
        if replicas.distributed:
            _write_distributed(output, replicas, digest_at_start, digest_at_end)
    distributed.stop(replicas)
    logger.info(
        "best epoch %d, validation score %.4f", state.best_epoch, state.best_score
    )
    return output


def _validate(
    model: TwoHeadClassifier,
    encoder: ComplaintEncoder,
    data: LoadedDataset,
    args: TrainingArguments,
    state: TrainingState,
    running: list[float],
    output: Path,
) -> None:
    """Score the validation split after an epoch, keep the best weights, decide to stop."""
    started = time.monotonic()
    logits = predict_logits(
        model,
        encoder,
        data.splits["validation"]["text"],
        data.splits["validation"]["metadata"],
        args.eval_batch_size,
    )
    metrics = validation_score(data, logits, "validation")
    state.history.append(
        {
            "epoch": state.epoch + 1,
            "train_loss": float(np.mean(running or [0])),
            **_brief(metrics),
        }
    )
    logger.info(
        "epoch %d validation %s (%.0fs)",
        state.epoch + 1,
        json.dumps(_brief(metrics)),
        time.monotonic() - started,
    )
    if metrics["score"] > state.best_score:
        state.best_score, state.best_epoch, state.bad_epochs = (
            metrics["score"],
            state.epoch + 1,
            0,
        )
        _save(
            output / BEST,
            {
                "model": model.state_dict(),
                "epoch": state.epoch + 1,
                "validation": metrics,
            },
        )
    else:
        state.bad_epochs += 1
    if state.bad_epochs > args.patience:
        logger.info(
            "stopping early: no validation gain for %d epochs", state.bad_epochs
        )
        state.finished = True


def _write_distributed(
    output: Path,
    replicas: distributed.Replicas,
    at_start: list[str],
    at_end: list[str],
) -> None:
    """Record that the replicas stayed identical: their parameter digests, start and end."""
    record = {
        "world_size": replicas.world_size,
        "backend": "gloo",
        "parameter_digests_at_start": at_start,
        "parameter_digests_at_end": at_end,
    }
    (output / "distributed.json").write_text(json.dumps(record, indent=2))


def _brief(metrics: dict) -> dict:
    brief = {"score": round(metrics["score"], 4)}
    if "escalation" in metrics:
        brief["escalation_roc_auc"] = round(metrics["escalation"]["roc_auc"], 4)
        brief["escalation_pr_auc"] = round(metrics["escalation"]["pr_auc"], 4)
    if "category" in metrics:
        brief["category_macro_f1"] = round(metrics["category"]["macro_f1"], 4)
    return brief


def _write_run_files(
    output: Path, args: TrainingArguments, base: Path, data: LoadedDataset
) -> None:
    """Everything export needs besides weights: arguments, labels, tokenizer, encoder config."""
    (output / "args.json").write_text(args.to_json())
    (output / "labels.json").write_text(
        json.dumps(
            {
                "categories": data.categories if data.spec.has_category else [],
                "escalation": data.spec.has_escalation,
                "escalation_proxy": data.spec.escalation_proxy,
                "metadata_keys": data.spec.metadata_keys,
                "data_fingerprint": data.fingerprint,
                "data_report": data.report,
            },
            indent=2,
        )
    )
    shutil.copy(base / "tokenizer.json", output / "tokenizer.json")
    shutil.copy(base / "config.json", output / "config.json")
