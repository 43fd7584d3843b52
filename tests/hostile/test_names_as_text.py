"""Runs and sweeps named to run script or fetch a foreign image (`<iframe srcdoc=…>`, `<img src=…>`,
`![](…)`) appear on Home, Run, Runs, Compare and Sweep as the characters they were typed with: every Markdown
body, title, caption, alert, label and tooltip carrying one renders to text (no tag, no foreign link or image)
and allows no HTML; Plotly's titles, legends and axes carry them with their tags escaped. So do a metric key
a script logged, an image key, an owner's name and a run list typed into Compare's address."""

from __future__ import annotations

import html
import io
import json
import re
from typing import Iterator

import pytest
from google.protobuf.json_format import MessageToDict
from PIL import Image
from streamlit.testing.v1 import AppTest

from app.literal import literal, literal_code, plotly_literal
from engine.presets import PRESETS
from lab_notes import Notebook
from tests.app.conftest import served_on_loopback  # noqa: F401 - autouse: the app's loopback address
from tests.app.conftest import notebook, page  # noqa: F401 - `notebook`: a temporary notebook the app opens
from tests.hostile.names import (BOLD_AND_IMAGE_NAME, IMG_TAG_NAME, MARKDOWN_IMAGE_NAME, METRIC_KEY, NAMES,
                                 SCRIPT_NAME, carries_a_name, markup_in, reads_as)

MARKDOWN_FIELDS = {"body", "label", "help", "caption", "text"}  # what Streamlit renders as Markdown
CONFIG = PRESETS["tiny"].model_dump(mode="json")


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 40, 40)).save(out, format="PNG")
    return out.getvalue()


def seeded(notebook: Notebook) -> tuple[dict[str, int], dict[str, int]]:
    """A finished run named each hostile name, and a sweep of that name with two runs of that name; every run
    logs a loss, an accuracy and the hostile metric key. Returns ({name: run id}, {name: sweep id})."""
    runs = {name: notebook.create_run(CONFIG, name=name, preset="tiny") for name in NAMES}
    sweeps = {name: notebook.create_sweep(name=name, preset="tiny", mode="grid", fields={"optim.lr": [0.001, 0.01]},
                                      runs=[(name, CONFIG, []), (name, CONFIG, [])]) for name in NAMES}
    while (attempt := notebook.claim_next_run("test-worker")) is not None:
        for step in (1, 2, 3):
            notebook.log_metrics(attempt.run_id, step, {"loss/total": 1.0 / step, METRIC_KEY: step * 0.5,
                                                    "eval/acc/prototype": 0.1 * step + 0.01 * attempt.run_id},
                             attempt=attempt)
        notebook.log_image(attempt.run_id, IMG_TAG_NAME, 1, png(), attempt=attempt)
        notebook.log_image(attempt.run_id, IMG_TAG_NAME, 2, png(), attempt=attempt)
        notebook.flush()
        notebook.finish_attempt(attempt, "completed")
    return runs, sweeps


def nodes(node) -> Iterator:
    """Every block and element under `node` (AppTest's tree), blocks included: an expander's or popover's label
    is on its block."""
    yield node
    for child in getattr(node, "children", {}).values():
        yield from nodes(child)


def markdown_strings(message: dict) -> Iterator[str]:
    """The strings of a proto (as a dict) that Streamlit renders as Markdown, at any depth (an image's caption)."""
    for key, value in message.items():
        if key in MARKDOWN_FIELDS and isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            yield from markdown_strings(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    yield from markdown_strings(item)


def plotly_strings(spec: object) -> Iterator[str]:
    if isinstance(spec, str):
        yield spec
    elif isinstance(spec, dict):
        for value in spec.values():
            yield from plotly_strings(value)
    elif isinstance(spec, list):
        for value in spec:
            yield from plotly_strings(value)


def assert_every_name_is_text(app: AppTest) -> int:
    """No Markdown string carrying a hostile name renders to more than text or allows HTML, and no Plotly string
    carrying one holds a tag. Returns how many strings carried one (the caller checks they were looked at)."""
    assert not app.exception, [e.value for e in app.exception]
    carried = 0
    for node in nodes(app._tree):
        proto = getattr(node, "proto", None)
        if proto is None:
            continue
        if node.type == "plotly_chart":
            for text in plotly_strings(json.loads(proto.spec)):
                if carries_a_name(text):
                    carried += 1
                    assert not re.search(r"<(?!/?extra>)", text), f"a tag in a Plotly string: {text!r}"
            continue
        for text in markdown_strings(MessageToDict(proto, preserving_proto_field_name=True)):
            if carries_a_name(text):
                carried += 1
                assert not markup_in(text), f"{node.type} renders markup {markup_in(text)} from {text!r}"
                assert not getattr(proto, "allow_html", False), f"{node.type} allows HTML around {text!r}"
    return carried


def bodies(elements) -> list[str]:
    return [e.value for e in elements]


def test_the_helper_shows_the_names_as_typed():
    for name in NAMES:
        assert not markup_in(literal(name)) and reads_as(literal(name), name)
        assert not markup_in(literal_code(name)) and reads_as(literal_code(name), name)
        assert "<" not in plotly_literal(name) and html.unescape(plotly_literal(name)) == name
    # the checks above can fail: the raw names are markup
    assert "iframe" in markup_in(SCRIPT_NAME) and "img" in markup_in(IMG_TAG_NAME)
    assert "img" in markup_in(MARKDOWN_IMAGE_NAME) and not reads_as(BOLD_AND_IMAGE_NAME, BOLD_AND_IMAGE_NAME)


def test_home_lists_the_hostile_runs_as_text(notebook):
    seeded(notebook)
    app = page("home")
    assert assert_every_name_is_text(app) >= 4
    markdown = bodies(app.markdown)
    for name in NAMES:
        assert any(reads_as(m, name) for m in markdown), name
    assert not any(m.allow_html for m in app.markdown)  # nothing on Home is read as HTML any more


@pytest.mark.parametrize("name", NAMES)
def test_a_run_page_titles_the_run_with_its_name_as_text(notebook, name):
    runs, _ = seeded(notebook)
    app = page("run", run=str(runs[name]))
    assert assert_every_name_is_text(app) >= 1
    (title,) = bodies(app.title)
    assert reads_as(title, f"Run {runs[name]} — {name}")
    images = page("run", run=str(runs[name]), tab="Reconstructions")  # an image key a script chose
    assert assert_every_name_is_text(images) >= 2  # the slider's label and the image's caption
    assert any(reads_as(s.label, IMG_TAG_NAME) for s in images.select_slider)


def test_the_runs_page_shows_the_names_in_its_table_and_nowhere_as_markup(notebook):
    seeded(notebook)
    app = page("runs")
    assert_every_name_is_text(app)
    assert set(NAMES) <= set(app.dataframe[0].value["name"])  # a data frame's cells are text by nature


def test_compare_labels_curves_and_legends_with_the_names_as_text(notebook):
    runs, _ = seeded(notebook)
    ids = [runs[name] for name in NAMES]
    app = page("compare", runs=",".join(map(str, ids)) + f",{IMG_TAG_NAME}")  # a run list typed into the address
    assert assert_every_name_is_text(app) >= 8  # the warning, legends of every chart, the key's chart title
    assert any(reads_as(w, IMG_TAG_NAME) for w in bodies(app.warning))
    legends = {trace["name"] for chart in app.get("plotly_chart") for trace in json.loads(chart.proto.spec)["data"]}
    for run_id, name in zip(ids, NAMES):
        assert plotly_literal(f"{run_id} · {name}") in legends
    titles = [json.loads(chart.proto.spec)["layout"]["title"]["text"] for chart in app.get("plotly_chart")]
    assert plotly_literal(METRIC_KEY) in titles


@pytest.mark.parametrize("name", NAMES)
def test_a_sweep_page_titles_the_sweep_and_its_best_run_as_text(notebook, name):
    _, sweeps = seeded(notebook)
    app = page("sweep", sweep=str(sweeps[name]))
    assert assert_every_name_is_text(app) >= 3
    assert reads_as(bodies(app.title)[0], f"Sweep {sweeps[name]} — {name}")
    (best,) = bodies(app.success)
    assert reads_as(best, name) and "](/run?run=" in best  # the link to the best run stays a link
    judged = page("sweep", sweep=str(sweeps[name]))
    judged.selectbox[0].set_value(METRIC_KEY).run()  # judged by the key a script logged: in the banner and axes
    assert assert_every_name_is_text(judged) >= 4
    assert reads_as(bodies(judged.success)[0], METRIC_KEY)


def test_an_owners_name_is_text_where_sign_in_shows_it(notebook):
    from tests.app.test_sign_in_pages import signed_in_page

    owner = f"{IMG_TAG_NAME}@lab.org"  # whatever the identity provider calls them
    run_id = notebook.create_run(CONFIG, name="someone else's", preset="tiny", owner=owner)
    for app in (signed_in_page("home", "alice@lab.org"), signed_in_page("run", "alice@lab.org", run=str(run_id))):
        assert assert_every_name_is_text(app) >= 1
    assert any(reads_as(c, f"Only its owner ({owner})") for c in bodies(app.caption))  # why alice may not stop it


def test_new_run_shows_a_cloned_runs_name_and_typed_sweep_values_as_text(notebook):
    runs, _ = seeded(notebook)
    app = page("new_run", clone=str(runs[SCRIPT_NAME]))
    assert any(reads_as(i, f"Cloning run {runs[SCRIPT_NAME]} — {SCRIPT_NAME}") for i in bodies(app.info))
    source = f"clone{runs[SCRIPT_NAME]}"
    app.selectbox(key=f"sweep-field0:{source}").set_value("optim.lr").run()
    app.text_input(key=f"sweep-values0:{source}").set_value(f"{MARKDOWN_IMAGE_NAME}, {IMG_TAG_NAME}").run()
    assert assert_every_name_is_text(app) >= 2  # the info, and the values as the sweep's points or its errors


def test_the_evaluation_tab_shows_class_names_from_the_users_folders_as_text(notebook):
    runs, _ = seeded(notebook)
    run_id = runs[SCRIPT_NAME]
    classes = [SCRIPT_NAME, IMG_TAG_NAME, "plain"]  # an image folder's sub-folder names
    accuracy = {"prototype": {"mean": 0.6, "ci95": 0.05}}
    notebook.log_snapshot(run_id, "few_shot", 3, {
        "split": {"eval_classes": classes[:2], "train_classes": classes[2:], "held_out_classes": True},
        "n_way": 2, "k_shot": 1, "episodes": 10, "step": 3, "accuracy": accuracy, "knn_neighbours": 3})
    notebook.log_snapshot(run_id, "features", 3, {
        "points": [[0.1, 0.2], [0.3, 0.1], [-0.2, 0.4]], "labels": [0, 1, 2], "class_names": classes, "dim": 2,
        "normalized": False, "alignment": 0.5, "uniformity": -1.0})
    app = page("run", run=str(run_id), tab="Evaluation")
    assert assert_every_name_is_text(app) >= 4  # the caption naming the held-out classes, the feature legend
    assert any(reads_as(c, f"Held out: {SCRIPT_NAME}, {IMG_TAG_NAME}") for c in bodies(app.caption))
    legends = {t.get("name") for c in app.get("plotly_chart") for t in json.loads(c.proto.spec)["data"]}
    assert {plotly_literal(SCRIPT_NAME), plotly_literal(IMG_TAG_NAME)} <= legends


def test_no_page_but_the_journals_renderer_lets_streamlit_read_html():
    """Pages show typed text through app/literal.py; the journal's renderer (its own sanitiser, its own tests) is
    the one place HTML is let through."""
    from pathlib import Path

    app_folder = Path(__file__).resolve().parents[2] / "app"
    allowed = {app_folder / "app_pages" / "journal.py"}
    letting_html = [str(path.relative_to(app_folder)) for path in sorted(app_folder.rglob("*.py"))
                    if path not in allowed and re.search(r"unsafe_allow_html\s*=\s*True|st\.html\(", path.read_text())]
    assert letting_html == []
