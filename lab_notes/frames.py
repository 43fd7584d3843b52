"""The notebook as pandas data frames, for a researcher's own analysis (in Jupyter, say):

    from lab_notes import Notebook
    notebook = Notebook("sqlite:///notebook.db")
    runs = notebook.runs_frame()                          # one row per run: config, final metrics, status, provenance
    curves = notebook.metrics_frame([3, 4], ["loss/total"])   # long format: run_id, key, step, value, wall_time
    curves.pivot_table(index="step", columns="run_id", values="value").plot()

NaN and ±inf come back as they were logged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

from sqlalchemy import select

from lab_notes.rooms import Room
from lab_notes.schema import MetricRow
from lab_notes.series import from_sql

if TYPE_CHECKING:
    import pandas as pd  # imported when a frame is asked for: workers and run processes never pay for it

RUN_COLUMNS = ("id", "name", "preset", "status", "status_reason", "parent_id", "attempt", "device", "created_at",
               "started_at", "ended_at")


class FramesStore(Room):
    """Needs the runs, metrics and snapshots rooms (the Notebook has them all)."""

    def runs_frame(self, run_ids: Iterable[int] | None = None, *, status: str | Sequence[str] | None = None
                   ) -> pd.DataFrame:
        """One row per run (newest first): its fields, `config.…` flattened, `final.…` (each metric's last value)
        and `provenance.…` of its latest attempt (commit, dirty, packages, host)."""
        import pandas as pd

        runs = self.list_runs(status=status)
        if run_ids is not None:
            wanted = set(run_ids)
            runs = [r for r in runs if r.id in wanted]
        provenance = self.latest_snapshots([r.id for r in runs], "provenance")
        records = []
        for run in runs:
            record = {column: getattr(run, column) for column in RUN_COLUMNS}
            record["config"] = run.config
            record["final"] = {key: value for key, (_, value) in self.latest_metrics(run.id).items()}
            found = provenance.get(run.id, {})
            git = found.get("git", {})
            record["provenance"] = {"git_commit": git.get("commit"), "git_branch": git.get("branch"),
                                    "git_dirty": git.get("dirty"), "python": found.get("python"),
                                    "host": found.get("host"), "packages": found.get("packages", {})}
            records.append(record)
        frame = pd.json_normalize(records, sep=".") if records else pd.DataFrame(columns=list(RUN_COLUMNS))
        return frame.set_index("id")

    def metrics_frame(self, run_ids: Iterable[int], keys: Iterable[str] | None = None) -> pd.DataFrame:
        """Every point of `keys` (all keys when None) of the runs, long format, ordered by run, key and step."""
        import pandas as pd

        query = (select(MetricRow.run_id, MetricRow.key, MetricRow.step, MetricRow.value, MetricRow.wall_time)
                 .where(MetricRow.run_id.in_(list(run_ids)))
                 .order_by(MetricRow.run_id, MetricRow.key, MetricRow.step))
        if keys is not None:
            query = query.where(MetricRow.key.in_(list(keys)))
        self.flush()  # what the caller just logged is in the frame
        with self._read() as session:
            rows = session.execute(query).all()
        frame = pd.DataFrame(rows, columns=["run_id", "key", "step", "value", "wall_time"])
        frame["value"] = from_sql(frame["value"].tolist())  # NULL is how NaN is stored
        return frame
