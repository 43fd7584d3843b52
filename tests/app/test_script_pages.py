"""The pages with script runs (AppTest, no browser): the New-run page's "Your script" kind with its checks and
Clone and edit, and the Run and Compare pages treating a script run like a preset run."""

from __future__ import annotations

import math

from engine import jobs
from engine.tensorboard_feed import SNAPSHOT_HPARAMS, SNAPSHOT_TEXT
from lab_notes import Notebook
from tests.app.conftest import live_charts, page, png, seeded_run
from tests.helpers import claimed


def script_run(notebook: Notebook, tmp_path, *, name: str = "my script",
               command: tuple[str, ...] = ("python", "train.py", "--lr", "0.1")) -> int:
    job = jobs.validate_script({"command": list(command), "workdir": str(tmp_path),
                                "env": {"SEED": "3"}})
    run_id = jobs.submit_script(notebook, job, name=name).run_id
    attempt = claimed(notebook, run_id)
    for step in range(10):
        notebook.log_metrics(run_id, step, {"loss/train": 1 / (step + 1), "acc/heldout": step / 10,
                                        "my metric": math.sqrt(step)}, attempt=attempt)
    notebook.log_image(run_id, "samples", 4, png(90), attempt=attempt)
    notebook.log_snapshot(run_id, SNAPSHOT_TEXT, 3, {"tag": "note", "text": "<script>alert(1)</script> **x**"},
                      key="note", attempt=attempt)
    notebook.log_snapshot(run_id, SNAPSHOT_HPARAMS, 0, {"lr": 0.1, "optimizer": "sgd"}, attempt=attempt)
    notebook.flush()
    notebook.finish_attempt(attempt, "completed", exit_code=0)
    return run_id


def test_your_script_kind_checks_the_folder_and_launches_a_script_run(notebook, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CODE_DIR", str(tmp_path))
    (tmp_path / "project").mkdir()
    app = page("new_run")
    app.radio(key="kind").set_value("script").run()
    app.text_input(key="command:script").set_value("python train.py --note 'two words'").run()
    app.text_input(key="workdir:script").set_value("/etc").run()
    errors = " ".join(e.value for e in app.error)
    assert "workdir" in errors and "outside the code folder" in errors
    assert app.button[-1].label == "🚀 Launch" and app.button[-1].disabled
    app.text_input(key="workdir:script").set_value("project").run()
    app.text_area(key="env:script").set_value("NOT A LINE").run()
    assert "env.0" in " ".join(e.value for e in app.error)
    app.text_area(key="env:script").set_value("SEED=3\nNAME=<b>x</b>").run()
    app.text_input(key="name:script").set_value("mine").run()
    assert not app.error and not app.button[-1].disabled
    app.button[-1].click().run()
    (run,) = notebook.list_runs()
    assert (run.name, run.status, run.preset) == ("mine", "queued", None)
    assert run.config["kind"] == "script" and run.config["command"] == ["python", "train.py", "--note", "two words"]
    assert run.config["workdir"] == "project" and run.config["env"] == {"SEED": "3", "NAME": "<b>x</b>"}


def test_clone_and_edit_of_a_script_run_opens_the_script_form_with_its_values(notebook, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CODE_DIR", str(tmp_path.parent))
    parent = script_run(notebook, tmp_path)
    app = page("new_run", clone=str(parent))
    assert app.text_input(key=f"command:clone{parent}").value == "python train.py --lr 0.1"
    assert app.text_area(key=f"env:clone{parent}").value == "SEED=3"
    app.text_input(key=f"command:clone{parent}").set_value("python train.py --lr 0.2").run()
    app.button[-1].click().run()
    child = notebook.list_runs()[0]
    assert child.parent_id == parent and child.config["command"][-1] == "0.2" and child.config["env"] == {"SEED": "3"}


def test_the_run_page_shows_a_script_run_generically(notebook, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CODE_DIR", str(tmp_path.parent))
    run_id = script_run(notebook, tmp_path)
    app = page("run", run=str(run_id))
    assert "command `python train.py --lr 0.1`" in app.markdown[0].value and "device" not in app.markdown[0].value
    assert [t.label for t in app.tabs] == ["Charts", "Images", "Provenance", "Config", "Output"]  # no Evaluation
    assert set(live_charts(app)) == {"Losses", "Accuracy", "my metric"}  # metrics under whatever keys they have
    app = page("run", run=str(run_id), tab="Images")
    assert app.get("image") and app.text[0].value == "<script>alert(1)</script> **x**"  # text, never rendered
    app = page("run", run=str(run_id), tab="Config")
    table = app.dataframe[0].value
    assert table.loc["command", "value"] == str(["python", "train.py", "--lr", "0.1"])
    assert table.loc["env.SEED", "value"] == "3" and table.loc["hparams.optimizer", "value"] == "sgd"


def test_compare_puts_a_script_run_beside_a_preset_run(notebook, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CODE_DIR", str(tmp_path.parent))
    preset_run, mine = seeded_run(notebook), script_run(notebook, tmp_path)
    app = page("compare", runs=f"{preset_run},{mine}")
    config_rows = list(app.dataframe[0].value.index)
    assert "command" in config_rows and "optim.lr" in config_rows
    finals = next(d.value for d in app.dataframe if "my metric" in d.value.index)  # the final metrics
    assert finals.loc["my metric"].isna().tolist() == [True, False] and finals.loc["loss/total"].notna().iloc[0]
    specs = [c.proto.spec for c in app.get("plotly_chart")]
    assert any("my metric" in spec for spec in specs) and any("recon_a" in spec for spec in specs)


def test_home_and_runs_pages_list_a_script_run_and_a_running_one(notebook, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CODE_DIR", str(tmp_path.parent))
    finished = script_run(notebook, tmp_path, name="finished script")
    running = jobs.submit_script(notebook, jobs.validate_script({"command": ["python", "t.py"],
                                                             "workdir": str(tmp_path)}), name="running script").run_id
    attempt = claimed(notebook, running)
    notebook.log_metrics(running, 3, {"loss": 0.5}, attempt=attempt)
    notebook.flush()
    for name in ("home", "runs"):
        app = page(name)
        shown = " ".join(str(d.value) for d in app.dataframe) + " ".join(m.value for m in app.markdown)
        assert "finished script" in shown and "running script" in shown, name
    assert notebook.get_run(finished).status == "completed"


def test_the_facts_line_names_the_program_and_quotes_its_arguments_as_a_shell_would(notebook, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CODE_DIR", str(tmp_path.parent))
    run_id = script_run(notebook, tmp_path, command=("/home/me/project/.venv/bin/python", "train.py", "--tag",
                                                     "two words"))
    facts = page("run", run=str(run_id)).markdown[0].value
    assert "command `python train.py --tag 'two words'`" in facts and "/home/me" not in facts
    table = page("run", run=str(run_id), tab="Config").dataframe[0].value
    assert table.loc["command", "value"].startswith("['/home/me/project/.venv/bin/python'")  # the whole argv kept
