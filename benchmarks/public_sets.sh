#!/bin/sh
# The public benchmarks of docs/benchmarks-public.md: fine-tune on banking77's and MultiDoGO's
# official training splits, export, and evaluate on their official test splits beside the
# TF-IDF baseline (fitted on the same split, in the same `triage evaluate` run).
#
# Usage, from the repository's root, with the training tools installed:
#   nohup nice -n 19 sh benchmarks/public_sets.sh train > runs/public-train.log 2>&1 &
#   nohup nice -n 19 sh benchmarks/public_sets.sh evaluate > runs/public-evaluate.log 2>&1 &
# Runs (checkpoints, resumable with `triage train --output runs/<set> --resume`) and bundles
# go to runs/, which git ignores; results go to docs/results/public-<set>.json.
set -e
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 MALLOC_ARENA_MAX=2
TRIAGE="${PYTHON:-python} -m triage_cli.main"
stamp() { date -u +"%FT%TZ $1"; }

train() {
  # banking77: 8,986 training queries (a tenth of the official train split is validation),
  # short texts, so 64-token windows; 3 epochs.
  stamp "train banking77"
  $TRIAGE train --spec data/specs/banking77.toml --output runs/banking77 \
    --epochs 3 --max-tokens 64 --chunk-overlap 8 --batch-size 16
  # MultiDoGO: one model over all six domains, on a random sample of 20,000 of the 81,409
  # training turns (seeded), 1 epoch; validation is the official dev split.
  stamp "train multidogo"
  $TRIAGE train --spec data/specs/multidogo.toml --output runs/multidogo \
    --epochs 1 --max-tokens 64 --chunk-overlap 8 --batch-size 16 --max-train-rows 20000
  stamp "trained"
}

evaluate() {
  for set in banking77 multidogo; do
    stamp "export $set"
    $TRIAGE export runs/$set --output runs/$set-bundle --version $set-minilm --no-evaluate
    stamp "evaluate $set"
    $TRIAGE evaluate runs/$set-bundle --spec data/specs/$set.toml \
      --output docs/results/public-$set.json
  done
  stamp "evaluated"
  ${PYTHON:-python} benchmarks/public_table.py docs/results/public-banking77.json \
    docs/results/public-multidogo.json
}

"$@"
