"""`python -m engine …`: list presets, train one into a folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from data import DatasetError
from engine.config import PRESET_INFO, ConfigError, lint, preset, with_overrides


def _print_presets() -> int:
    width = max(len(name) for name in PRESET_INFO)
    for info in PRESET_INFO.values():
        print(f"{info.name:<{width}}  {info.journal_date or '—':<10}  {info.summary}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from engine.sinks import JsonlSink, ProgressSink  # torch loads only when training
    from engine.train import train

    cfg = with_overrides(preset(args.preset), args.set)
    out = Path(args.out)
    for warning in lint(cfg):
        print(f"lint: {warning}", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=2))
    (out / "STOP").unlink(missing_ok=True)
    files = JsonlSink(out)
    progress = ProgressSink(files, cfg.schedule.episodes)
    resume_from = out / "checkpoints" if args.resume else None
    try:
        result = train(cfg, progress, resume_from=resume_from, checkpoint_dir=out / "checkpoints")
    finally:
        progress.close()
        files.close()
    print(f"{result.status} at step {result.step}; metrics in {out / 'metrics.jsonl'}")
    if result.report:
        print(f"divergence: {result.report['reason']} at step {result.report['first_step']} "
              f"(policy {result.report['policy']}); report in {out / 'status.json'}")
    return 0 if result.status in ("completed", "stopped") else 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("presets", help="list the presets with their journal date")
    train = commands.add_parser("train", help="train a preset into a folder (metrics.jsonl, images, checkpoints)")
    train.add_argument("--preset", required=True, help="preset name (see `presets`)")
    train.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                       help="override a config field, e.g. --set optim.lr=0.01 (repeatable)")
    train.add_argument("--out", required=True, help="output folder")
    train.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "presets":
            return _print_presets()
        return _train(args)
    except (ConfigError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
