"""Few-shot report for every journal preset at its default size: held-out and seen-class accuracy ± 95 % interval
for each judge, against chance (1/N, the baseline every number here is a ratio to), and wall time.

    .venv/bin/python bench/fewshot_report.py [--presets NAME ...] [--markdown FILE]

Each preset trains in this process exactly as a run would (its own seed, its default episodes) and ends with the
end-of-run protocol (600 held-out episodes unless the preset says otherwise). The table is Markdown, for the README.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.presets import PRESET_INFO  # noqa: E402
from engine.evaluation import JUDGES  # noqa: E402
from engine.sinks import JsonlSink  # noqa: E402
from engine.train import train  # noqa: E402

SHORT = {"prototype": "prototype", "discriminator": "disc", "knn": "k-NN", "linear_probe": "linear probe"}


def journal_presets() -> list[str]:
    return [name for name, info in PRESET_INFO.items() if info.journal_date and not name.endswith("journal-scale")]


def cell(summary: dict | None) -> str:
    return "—" if summary is None else f"{summary['mean']:.3f} ± {summary['ci95']:.3f}"


def measure(name: str) -> dict:
    cfg = PRESET_INFO[name].config
    with tempfile.TemporaryDirectory() as folder:
        sink = JsonlSink(folder)
        started = time.perf_counter()
        result = train(cfg, sink, run_dir=folder)
        wall = time.perf_counter() - started
        sink.close()
        report_path = Path(folder) / "eval.json"
        report = json.loads(report_path.read_text()) if report_path.exists() else None
    return {"preset": name, "status": result.status, "step": result.step, "wall_s": wall, "report": report,
            "chance": 1 / cfg.data.n_way}


def table(rows: list[dict]) -> str:
    header = ["preset", "status", "wall s"]
    for judge in JUDGES:
        header += [f"{SHORT[judge]} held-out", f"{SHORT[judge]} seen"]
    header.append("best held-out ÷ chance")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        report = row["report"] or {}
        held, seen = report.get("accuracy") or {}, report.get("seen_classes") or {}
        cells = [f"`{row['preset']}`", f"{row['status']} at {row['step']}", f"{row['wall_s']:.0f}"]
        for judge in JUDGES:
            cells += [cell(held.get(judge)), cell(seen.get(judge))]
        best = max((v["mean"] for v in held.values()), default=None)
        cells.append("—" if best is None else f"{best / row['chance']:.2f}×")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="*", default=None, help="preset names (default: every journal preset)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    rows = []
    for name in args.presets or journal_presets():
        row = measure(name)
        rows.append(row)
        print(f"{name}: {row['status']} at step {row['step']} in {row['wall_s']:.1f} s", flush=True)
    text = table(rows)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
