"""The experiment engine: config, models, losses, the training loop, its guard and the CLI."""
