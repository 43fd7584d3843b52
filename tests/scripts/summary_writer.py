"""A plain TensorBoard script, no lab_notes: trains a one-layer model and logs with SummaryWriter where
TENSORBOARD_LOGDIR points (as an unchanged script that honours that variable would)."""

import argparse
import json
import os

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=20)
parser.add_argument("--lr", type=float, default=0.1)
args = parser.parse_args()

torch.manual_seed(0)
model = torch.nn.Linear(8, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
inputs, targets = torch.randn(32, 8), torch.randn(32, 1)
writer = SummaryWriter(os.environ["TENSORBOARD_LOGDIR"])
logged: dict[str, dict[int, float]] = {}


def remember(key: str, step: int, value: float) -> None:
    logged.setdefault(key, {})[step] = float(np.float32(value))  # TensorBoard stores scalars as float32


for step in range(args.steps):
    loss = torch.nn.functional.mse_loss(model(inputs), targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    writer.add_scalar("loss/train", loss.item(), step)
    remember("loss/train", step, loss.item())
    if step % 5 == 0:
        held = {"train": loss.item(), "heldout": loss.item() * 1.5}
        writer.add_scalars("acc", held, step)
        for name, value in held.items():
            remember(f"acc/{name}", step, value)
        writer.add_image("weights", (model.weight.detach().reshape(1, 1, 8).repeat(3, 4, 1) + 1) / 2, step)
        writer.add_text("note", f"<b>step</b> {step}", step)
writer.add_hparams({"lr": args.lr, "steps": args.steps}, {"hparam/final_loss": loss.item()})
remember("hparam/final_loss", 0, loss.item())
writer.close()
with open(os.environ["EXPECTED_METRICS"], "w") as out:
    json.dump(logged, out)
print(f"done: {args.steps} steps, final loss {loss.item():.4f}")
