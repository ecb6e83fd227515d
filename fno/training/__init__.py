"""The training loop and what it writes: steps, set-up, metrics, checkpoints."""
