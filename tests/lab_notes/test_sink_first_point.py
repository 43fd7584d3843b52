"""A run's first point is written at once: someone who just pressed Launch is waiting for it."""

from lab_notes import Notebook, NotebookSink


def test_the_first_point_is_readable_at_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'notebook.db'}"
    with Notebook(url) as writer, Notebook(url) as reader:
        run_id = writer.create_run({}, name="watched")
        sink = NotebookSink(writer, writer.claim_next_run("a worker"))
        sink.log_metrics(1, {"loss/total": 2.0})
        assert reader.latest_metrics(run_id)["loss/total"] == (1, 2.0)  # no flush asked, none waited for
