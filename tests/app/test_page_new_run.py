"""The New-run page: the form, its validation and lint, clones, and Launch.
Streamlit's AppTest against a seeded temporary notebook (fixtures in conftest.py)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from engine.config import with_overrides
from engine.presets import PRESETS
from tests.app.conftest import page, seeded_run
from tests.helpers import counted_image_folder


def test_new_run_rejects_bad_values_naming_the_field(notebook):
    app = page("new_run")
    app.number_input(key="tiny:optim.lr").set_value(-1.0).run()
    errors = " ".join(e.value for e in app.error)
    assert "optim.lr" in errors and "greater than 0" in errors
    assert app.button[-1].label == "🚀 Launch" and app.button[-1].disabled
    app.number_input(key="tiny:optim.lr").set_value(0.01).run()  # field errors first, then cross-field ones
    app.number_input(key="tiny:model.encoder.patch_size").set_value(5).run()
    assert "model.encoder.patch_size" in " ".join(e.value for e in app.error)
    assert "does not divide" in " ".join(e.value for e in app.error)
    assert notebook.list_runs() == []


def test_new_run_shows_lint_and_launch_queues_a_run(notebook):
    app = page("new_run")
    app.checkbox(key="tiny:loss.normalize").set_value(True).run()
    app.number_input(key="tiny:model.contrastive.feature_dim").set_value(1).run()
    assert any("model.contrastive.feature_dim" in w.value for w in app.warning)
    app.text_input(key="name:tiny").set_value("one-d features").run()
    app.button[-1].click().run()
    (run,) = notebook.list_runs()
    assert (run.name, run.status, run.preset) == ("one-d features", "queued", "tiny")
    assert run.config["model"]["contrastive"]["feature_dim"] == 1
    assert [w["path"] for w in run.lint] == ["model.contrastive.feature_dim"]


def test_clone_prefills_from_the_run_and_records_its_parent(notebook):
    parent = seeded_run(notebook, lr=0.005)
    app = page("new_run", clone=str(parent))
    assert app.number_input(key=f"clone{parent}:optim.lr").value == 0.005
    app.number_input(key=f"clone{parent}:optim.lr").set_value(0.01).run()
    app.button[-1].click().run()
    child = notebook.list_runs()[0]
    assert child.parent_id == parent and child.config["optim"]["lr"] == 0.01
    assert notebook.get_run(parent).config["optim"]["lr"] == 0.005  # the original never changes


def test_the_form_offers_only_what_the_data_folder_holds(notebook, tmp_path, monkeypatch):
    counted_image_folder(tmp_path / "datasets" / "my-shapes")
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path / "datasets"))
    app = page("new_run")
    choice = app.selectbox(key="tiny:data.path")
    assert choice.options == ["(none)", "my-shapes"]
    app.selectbox(key="tiny:data.dataset").set_value("folder").run()
    app.selectbox(key="tiny:data.path").set_value("my-shapes").run()
    assert not [e.value for e in app.error if "data.path" in e.value]


def test_the_form_labels_fields_in_words_with_the_path_in_the_help(notebook):
    app = page("new_run")
    field = app.number_input(key="tiny:data.samples_per_class")
    assert field.label == "Samples per class" and "field `data.samples_per_class`" in field.help
    assert app.number_input(key="tiny:data.n_way").label == "Classes per episode (N)"
    assert any(m.value == "**encoder — ViT encoder**" for m in app.markdown)  # once per sub-section


def form_fields_in_order(app: AppTest, prefix: str) -> list[tuple[str, object]]:
    """The form's fields top to bottom: (dotted path, the expander holding it or None)."""
    from streamlit.testing.v1.element_tree import Expander

    found = []

    def walk(node, expander) -> None:
        for index in sorted(getattr(node, "children", {})):
            child = node.children[index]
            key = getattr(child, "key", None)
            if isinstance(key, str) and key.startswith(f"{prefix}:"):
                found.append((key.removeprefix(f"{prefix}:"), expander))
            walk(child, child if isinstance(child, Expander) else expander)

    walk(app.main, None)
    return found


def test_a_journal_preset_shows_what_it_sets_first_and_folds_the_rest(notebook):
    name = "2022-12-14-negatives-infonce-diverges"
    app = page("new_run", preset=name)
    assert app.selectbox[0].value == name
    assert [s.value for s in app.subheader] == ["What this experiment sets"]
    fields = form_fields_in_order(app, name)
    leading = [path for path, expander in fields if expander is None]
    assert set(leading) == {"model.discriminator.enabled", "loss.temperature", "loss.denominator", "loss.normalize",
                            "loss.log_sum_exp", "optim.lr", "schedule.episodes", "schedule.image_every"}
    assert [path for path, _ in fields[:len(leading)]] == leading  # all of them before any folded field
    folded = [(path, expander) for path, expander in fields if expander is not None]
    assert len(fields) == len({path for path, _ in fields}) == len(leading) + len(folded)  # each field once
    assert {expander.label for _, expander in folded} >= {"data — Data and episodes", "model — Model"}
    assert not any(expander.proto.expanded for _, expander in folded)  # every section collapsed
    assert app.number_input(key=f"{name}:optim.lr").label == "Learning rate"  # labels in words, as everywhere
    markdown = [m.value for m in app.markdown]
    assert "**Model · discriminator — Discriminator**" in markdown and "**Losses**" in markdown

    app.number_input(key=f"{name}:optim.lr").set_value(-1.0).run()  # messages still under the field
    assert any("optim.lr" in e.value for e in app.error)
    app.number_input(key=f"{name}:optim.lr").set_value(0.01).run()
    app.text_input(key=f"name:{name}").set_value("as the journal").run()
    next(b for b in app.button if b.label == "🚀 Launch").click().run()
    (run,) = notebook.list_runs()
    assert (run.preset, run.status) == (name, "queued")
    assert run.config == PRESETS[name].model_dump(mode="json")  # the same config the unfolded form queued


def test_a_clone_shows_what_its_run_set_first(notebook):
    parent = seeded_run(notebook, lr=0.005)
    app = page("new_run", clone=str(parent))
    assert [s.value for s in app.subheader] == [f"What run {parent} sets"]
    leading = [path for path, expander in form_fields_in_order(app, f"clone{parent}") if expander is None]
    assert "optim.lr" in leading and "model.masking.ratio" in leading and "data.image_size" not in leading


def test_the_slurm_fields_show_only_where_sbatch_is_reachable_or_the_run_uses_slurm(notebook, monkeypatch):
    import app.form

    def labels(app) -> set[str]:
        return {w.label for kind in ("selectbox", "number_input", "text_input") for w in getattr(app, kind)}

    monkeypatch.setattr(app.form.shutil, "which", lambda name: None)  # a laptop without Slurm
    plain = page("new_run")
    assert "Executor" not in labels(plain) and "Partition" not in labels(plain)
    plain.button[-1].click().run()  # Launch still queues a run, on the default local executor
    assert notebook.list_runs()[0].config["runtime"]["executor"] == "local"

    cfg = with_overrides(PRESETS["tiny"], ["runtime.executor=slurm"])
    parent = notebook.create_run(cfg.model_dump(mode="json"), name="went to slurm", preset="tiny")
    clone = page("new_run", clone=str(parent))  # configured: shown, so the clone keeps it
    assert {"Executor", "Partition"} <= labels(clone)
    monkeypatch.setattr(app.form.shutil, "which", lambda name: "/usr/bin/sbatch")
    assert {"Executor", "Partition"} <= labels(page("new_run"))
