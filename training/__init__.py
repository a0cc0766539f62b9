"""Training, evaluation and export: the only room that imports torch and transformers."""
