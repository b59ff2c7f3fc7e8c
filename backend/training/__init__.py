"""Training: the loop and its building blocks (optimizers, schedulers, noise and loss, progress, sampling, saving)."""
