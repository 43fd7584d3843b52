"""A real Lightning fit recorded by `NotebookLogger`: a one-layer classifier on random 8-feature data, one or two
epochs on the CPU. A CSVLogger beside it writes what Lightning logged (the witness a test compares the notebook
with).

    LAB_NOTEBOOK_URL=sqlite:///notebook.db python tests/scripts/lightning_fit.py [--csv-dir DIR] [--epochs N]
        [--steps N]

Launched by the worker (tests/engine/test_script_runs.py) it also writes the witness to $EXPECTED_METRICS as
{key: {step: value}}.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile

import lightning
import torch
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lab_notes.integrations.lightning import NotebookLogger


class TinyClassifier(lightning.LightningModule):
    """Linear(8 -> 32) -> ReLU -> Linear(32 -> 2), cross-entropy; logs its training loss every step."""

    def __init__(self, lr: float = 0.05, width: int = 32) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, 2))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _index: int) -> torch.Tensor:
        features, labels = batch
        loss = nn.functional.cross_entropy(self.net(features), labels)
        self.log("train/loss", loss, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _index: int) -> None:
        features, labels = batch
        accuracy = (self.net(features).argmax(1) == labels).float().mean()
        self.log("val/acc", accuracy, on_epoch=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--csv-dir", default=None, help="where the CSVLogger witness writes (default: a temp dir)")
    parser.add_argument("--steps", type=int, default=-1, help="stop after this many training steps (-1: no limit)")
    parser.add_argument("--name", default="lightning fit")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    features = torch.randn(256, 8)
    labels = (features[:, 0] > 0).long()
    train = DataLoader(TensorDataset(features[:192], labels[:192]), batch_size=32)
    held_out = DataLoader(TensorDataset(features[192:], labels[192:]), batch_size=64)
    csv_dir = args.csv_dir or tempfile.mkdtemp(prefix="lightning-csv-")
    notebook_logger = NotebookLogger(name=args.name)
    trainer = lightning.Trainer(logger=[notebook_logger, CSVLogger(csv_dir, name="witness", version=0)],
                                max_epochs=args.epochs, max_steps=args.steps, log_every_n_steps=1, accelerator="cpu", devices=1,
                                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                default_root_dir=csv_dir)
    trainer.fit(TinyClassifier(), train, held_out)
    print(f"run {notebook_logger.version}", flush=True)
    witness = os.path.join(csv_dir, "witness", "version_0", "metrics.csv")
    print(f"csv {witness}", flush=True)
    if os.environ.get("EXPECTED_METRICS"):
        logged: dict[str, dict[str, float]] = {}
        with open(witness) as rows:
            for row in csv.DictReader(rows):
                for key, value in row.items():
                    if key != "step" and value != "":
                        logged.setdefault(key, {})[row["step"]] = float(value)
        with open(os.environ["EXPECTED_METRICS"], "w") as out:
            json.dump(logged, out)


if __name__ == "__main__":
    main()
