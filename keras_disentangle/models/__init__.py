"""Self-supervised and clustering models (``keras.Model`` subclasses)."""
