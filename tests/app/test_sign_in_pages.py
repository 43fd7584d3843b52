"""The pages with sign-in configured (AppTest's `secrets` and `user`): nothing but a sign-in button for a visitor
on any page; for a signed-in person, what they make records them, "Mine / Everyone's" filters, and others' runs
and notes cannot be stopped, resumed, deleted or edited (disabled, with the reason). Single-user mode (no
`[auth]`) is as before: no filters, no authors, everything allowed."""

from __future__ import annotations

import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from app.serving import ALLOW_ANONYMOUS_ENV
from engine.presets import PRESETS
from tests.app.test_owners import AUTH
from tests.app.conftest import APP, notebook, page  # noqa: F401 - `notebook`: the seeded temporary notebook fixture

ALICE, BOB, ADMIN = "alice@lab.org", "bob@lab.org", "admin@lab.org"
SECRETS = {"auth": AUTH, "notebook": {"admins": [ADMIN]}}


def signed_in_page(name: str, who: str | None, **query: str) -> AppTest:
    """Page `name` with sign-in configured, as `who` (None: a visitor who has not signed in)."""
    user = ({"is_logged_in": True, "email": who, "email_verified": True, "sub": f"sub-of-{who}"} if who
            else {"is_logged_in": False})
    return page(name, secrets=SECRETS, user=user, **query)


def runs_by(notebook, *owners: str | None) -> list[int]:
    return [notebook.create_run(PRESETS["tiny"].model_dump(mode="json"), name=f"run of {o}", preset="tiny", owner=o)
            for o in owners]


def everything_shown(app: AppTest) -> str:
    return " ".join(str(e.value) for kind in ("title", "markdown", "caption", "info", "subheader", "error")
                    for e in getattr(app, kind))


@pytest.mark.parametrize("name", ["home", "runs", "new_run", "run", "compare", "sweep", "journal"])
def test_a_visitor_who_has_not_signed_in_sees_only_a_sign_in_button(notebook, name):
    runs_by(notebook, ALICE)
    notebook.add_note(None, "alice's note", "text", owner=ALICE)
    app = signed_in_page(name, None, run="1")
    assert [b.label for b in app.button] == ["Sign in"]
    shown = everything_shown(app)
    assert "alice" not in shown and "run of" not in shown
    for widgets in (app.text_input, app.text_area, app.number_input, app.selectbox, app.multiselect,
                    app.dataframe, app.sidebar.button):
        assert len(widgets) == 0


def test_what_a_person_launches_records_them_and_each_sees_everyones_runs_with_who_made_them(notebook):
    runs_by(notebook, BOB)
    app = signed_in_page("home", ALICE)
    assert "Signed in as **alice@lab.org**" in [c.value for c in app.sidebar.caption]
    app.button(key="launch:2022-12-08-vit1").click().run()
    launched = notebook.list_runs()[0]
    assert launched.owner == ALICE and launched.id == 2
    app = signed_in_page("home", ALICE)
    shown = everything_shown(app)
    assert "by bob@lab.org" in shown and "by alice@lab.org" in shown


def test_mine_or_everyones_on_home_runs_and_journal(notebook):
    mine, theirs = runs_by(notebook, ALICE, BOB)
    notebook.add_note(None, "alice's note", "text", owner=ALICE)
    notebook.add_note(None, "bob's note", "text", owner=BOB)

    home = signed_in_page("home", ALICE)
    assert f"{theirs} · run of" in everything_shown(home)
    home.segmented_control(key="home:whose").set_value("Mine").run()
    assert f"{mine} · run of" in everything_shown(home) and f"{theirs} · run of" not in everything_shown(home)

    runs = signed_in_page("runs", ALICE)
    assert list(runs.dataframe[0].value["id"]) == [theirs, mine] and list(runs.dataframe[0].value["by"]) == [BOB,
                                                                                                         ALICE]
    runs.segmented_control(key="runs:whose").set_value("Mine").run()
    assert list(runs.dataframe[0].value["id"]) == [mine]

    journal = signed_in_page("journal", ALICE)
    assert {"by alice@lab.org", "by bob@lab.org"} <= {c.value for c in journal.caption}
    journal.segmented_control(key="journal:whose").set_value("Mine").run()
    shown = everything_shown(journal)
    assert "alice's note" in shown and "bob's note" not in shown


def test_anothers_run_cannot_be_stopped_or_resumed_and_the_page_says_why_but_an_admin_may(notebook):
    alices, bobs = runs_by(notebook, ALICE, BOB)
    as_bob = signed_in_page("run", BOB, run=str(alices))
    stop = next(b for b in as_bob.button if b.label == "⏹ Stop")
    assert stop.disabled
    assert f"🔒 Only its owner (alice@lab.org) or an admin may stop run {alices}; you are bob@lab.org." in [
        c.value for c in as_bob.caption]
    own = signed_in_page("run", BOB, run=str(bobs))
    own_stop = next(b for b in own.button if b.label == "⏹ Stop")
    assert not own_stop.disabled
    own_stop.click().run()
    assert notebook.get_run(bobs).status == "stopped"
    as_admin = signed_in_page("run", ADMIN, run=str(alices))
    assert "admin" in " ".join(c.value for c in as_admin.sidebar.caption)
    next(b for b in as_admin.button if b.label == "⏹ Stop").click().run()
    assert notebook.get_run(alices).status == "stopped"
    as_bob = signed_in_page("run", BOB, run=str(alices))
    assert next(b for b in as_bob.button if b.label == "▶ Resume").disabled
    assert any(f"may resume run {alices}" in c.value for c in as_bob.caption)


def test_on_the_runs_page_a_selection_of_anothers_runs_cannot_be_stopped_or_deleted(notebook):
    alices, = runs_by(notebook, ALICE)
    app = signed_in_page("runs", BOB)
    app.session_state["runs_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    app.run()
    assert any(f"may stop run {alices}" in c.value for c in app.caption)
    assert next(b for b in app.button if b.label == "Stop").disabled


def test_anothers_note_cannot_be_edited_and_ones_own_can(notebook):
    notebook.add_note(None, "alice's note", "text", owner=ALICE)
    notebook.add_note(None, "bob's note", "text", owner=BOB)
    app = signed_in_page("journal", BOB)
    edits = {b.key: b.disabled for b in app.button if b.label == "Edit"}
    assert edits == {"edit:1": True, "edit:2": False}


def test_single_user_mode_is_as_before_no_filters_no_authors_and_everything_allowed(notebook):
    alices, = runs_by(notebook, ALICE)  # even a run made under sign-in: the local user may do everything
    notebook.add_note(None, "a note", "text", owner=ALICE)
    for name in ("home", "runs", "journal"):
        app = page(name)
        assert not app.segmented_control and "Signed in" not in " ".join(c.value for c in app.sidebar.caption)
        assert "by alice" not in everything_shown(app)
    run = page("run", run=str(alices))
    assert not next(b for b in run.button if b.label == "⏹ Stop").disabled
    journal = page("journal")
    assert not next(b for b in journal.button if b.label == "Edit").disabled


def test_a_server_on_another_address_without_sign_in_shows_only_the_refusal(notebook, monkeypatch):
    runs_by(notebook, None)
    monkeypatch.delenv(ALLOW_ANONYMOUS_ENV, raising=False)
    address = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        app = AppTest.from_file(APP, default_timeout=60).run()
        assert [e.value for e in app.error] == [
            "Refusing to serve on 0.0.0.0 without sign-in: anyone who reaches it could read, launch and delete "
            "runs and notes. Configure sign-in (an [auth] section in .streamlit/secrets.toml, see the README), "
            "serve on 127.0.0.1, or pass --allow-anonymous to serve it to everyone on that network anyway."]
        assert not app.button and "run of" not in everything_shown(app)
        monkeypatch.setenv(ALLOW_ANONYMOUS_ENV, "1")
        assert AppTest.from_file(APP, default_timeout=60).run().title[0].value == "Lab notebook"
        signed = AppTest.from_file(APP, default_timeout=60)
        signed.secrets, signed.user = SECRETS, {"is_logged_in": False}
        monkeypatch.delenv(ALLOW_ANONYMOUS_ENV)
        assert [b.label for b in signed.run().button] == ["Sign in"]  # with sign-in: served, behind the gate
    finally:
        config.set_option("server.address", address)
