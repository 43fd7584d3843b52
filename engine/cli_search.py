"""`python -m engine sweep --search tpe --range PATH=LOW:HIGH[:log] --objective KEY[:max|min] --trials N
--parallel P [--pruner median|halving|none]`: a sweep that searches (engine.search). Kept apart from engine.cli,
which only registers these options."""

from __future__ import annotations

import argparse
import sys

from engine.config import ConfigError, Problem, with_overrides
from engine.presets import preset
from engine.search_space import PRUNERS, SAMPLERS, search_settings
from lab_notes import Notebook


def add_search_options(sweep: argparse.ArgumentParser) -> None:
    """The search's options on the `sweep` command."""
    sweep.add_argument("--search", choices=SAMPLERS, metavar="SAMPLER",
                       help=f"search instead of a grid: the sampler that picks each next trial ({', '.join(SAMPLERS)})")
    sweep.add_argument("--sampler", choices=SAMPLERS, help="the same as --search's value (either may name it)")
    sweep.add_argument("--range", action="append", default=[], metavar="PATH=LOW:HIGH[:log]",
                       help="a searched field: a range (log-spaced with :log; whole numbers for integer fields) or "
                            "choices PATH=A,B,C (repeatable)")
    sweep.add_argument("--objective", default="eval/prototype:max", metavar="KEY[:max|min]",
                       help="what the search optimises: a judge of the end-of-run report (eval/prototype) or a "
                            "metric (loss/total)")
    sweep.add_argument("--trials", type=int, default=20, help="the search's budget of trials")
    sweep.add_argument("--parallel", type=int, default=1, help="trials at once")
    sweep.add_argument("--pruner", choices=PRUNERS, default="median", help="stops hopeless trials early")
    sweep.add_argument("--seed", type=int, default=0, help="the sampler's seed")


def is_search(args: argparse.Namespace) -> bool:
    return bool(args.search or args.sampler or args.range)


def search_command(args: argparse.Namespace) -> int:
    """Check everything, then record the search and queue its first trials; nothing is queued on bad input."""
    from engine.search import submit_search

    if args.grid or args.list:
        raise ConfigError([Problem("sweep", "a search takes --range fields, not --grid or --list")])
    if args.search and args.sampler and args.search != args.sampler:
        raise ConfigError([Problem("sampler", f"--search {args.search} and --sampler {args.sampler} disagree")])
    cfg = with_overrides(preset(args.preset), args.set)
    settings = search_settings(cfg, args.range, args.objective, trials=args.trials, parallel=args.parallel,
                               sampler=args.search or args.sampler or "tpe", pruner=args.pruner, seed=args.seed)
    with Notebook(args.db) as notebook:
        sweep_id = submit_search(notebook, cfg, settings, name=args.name or args.preset, preset=args.preset)
        runs = notebook.get_sweep(sweep_id).run_ids
        from engine import jobs

        if not jobs.live_workers(notebook):
            print("no live worker: start one with `python -m engine worker`", file=sys.stderr)
    print(f"sweep {sweep_id}: search of {settings.trials} trials ({settings.sampler}, pruner {settings.pruner}); "
          f"first runs {' '.join(map(str, runs))}")
    return 0
