"""Who may change what (the one rule, `lab_notes.owners.may_change`), asked again where it is enforced: the jobs
service (stop, resume, delete) and the notes store (edit, delete); owners recorded and filtered by the store,
on SQLite and PostgreSQL; and where the app may serve (`app.serving`, `python -m app`'s flags)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.__main__ import main, secrets_files_in
from app.serving import is_loopback, read_auth_section, refusal_to_serve, sign_in_configured
from engine import jobs
from engine.presets import PRESETS
from lab_notes import Figure
from lab_notes.owners import LOCAL_USER, NotAllowed, Person, is_admin, may_change
from lab_notes.runs import Refused
from tests.app.conftest import png
from tests.lab_notes.conftest import notebook, notebook_url  # noqa: F401 - fixtures: SQLite, and PostgreSQL

ALICE, BOB, ADMIN = Person("alice@lab.org"), Person("bob@lab.org"), Person("admin@lab.org", is_admin=True)
AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "2e690be21aad2bad15e67df4fce1d1e9178b1987e8a615101a191be2a36e9ab1",  # random, as the app demands
        "client_id": "notebook", "client_secret": "x",
        "server_metadata_url": "https://id.lab.org/.well-known/openid-configuration"}


# --- the rule ---------------------------------------------------------------------------------------------------

def test_the_owner_and_admins_may_change_a_run_and_nobody_else_with_the_reason_in_words():
    assert may_change(ALICE, "alice@lab.org", "stop run 3")
    assert may_change(Person("Alice@Lab.org"), "alice@lab.org", "stop run 3")  # providers differ in case
    assert may_change(ADMIN, "alice@lab.org", "stop run 3")
    refused = may_change(BOB, "alice@lab.org", "stop run 3")
    assert not refused
    assert refused.reason == ("only its owner (alice@lab.org) or an admin may stop run 3; you are bob@lab.org")


def test_the_local_user_may_do_everything_and_what_they_made_is_for_admins_once_sign_in_is_on():
    assert may_change(LOCAL_USER, None, "stop run 1") and may_change(LOCAL_USER, "alice@lab.org", "stop run 1")
    refused = may_change(ALICE, None, "delete run 1")
    assert not refused and "the local user, before sign-in" in refused.reason
    assert may_change(ADMIN, None, "delete run 1")
    assert not may_change(Person("alice"), "Alice", "edit note 1")  # subjects (no '@') compare exactly


def test_admins_are_named_by_email_in_any_case():
    assert is_admin("A@lab.org", ["a@lab.org"]) and not is_admin("b@lab.org", ["a@lab.org"])
    assert not is_admin(None, ["a@lab.org"])


# --- where it is enforced: the jobs service and the notes store --------------------------------------------------

def queued_run(notebook, owner: str | None) -> int:
    return jobs.submit(notebook, PRESETS["tiny"], name=f"{owner}'s", preset="tiny", owner=owner).run_id


def test_jobs_refuse_to_stop_resume_or_delete_another_persons_run(notebook, tmp_path):
    alices = queued_run(notebook, ALICE.name)
    assert notebook.get_run(alices).owner == ALICE.name
    for action in (lambda: jobs.request_stop(notebook, alices, by=BOB), lambda: jobs.resume(notebook, alices, by=BOB),
                   lambda: jobs.delete(notebook, alices, tmp_path, by=BOB)):
        with pytest.raises(NotAllowed, match=r"only its owner \(alice@lab\.org\) or an admin may"):
            action()
        assert notebook.get_run(alices).status == "queued"  # nothing happened
    assert issubclass(NotAllowed, Refused)  # so every page and the CLI show it as they show any refusal
    assert jobs.request_stop(notebook, alices, by=ALICE) == f"run {alices}: stopped before it started"
    assert jobs.resume(notebook, alices, by=ADMIN) == 0
    jobs.request_stop(notebook, alices)  # no `by`: the local user (CLI, single-user mode) may, as before sign-in
    jobs.delete(notebook, alices, tmp_path, by=ADMIN)
    assert notebook.get_run(alices).status == "deleted"


def test_notes_record_their_owner_and_only_the_owner_or_an_admin_edits_or_deletes_them(notebook):
    note = notebook.add_note(None, "alice's", "body", owner=ALICE.name,
                             figures=[Figure("a.png", png(10), owner=ALICE.name)])
    assert notebook.get_note(note).owner == ALICE.name
    assert notebook.get_note(note).figures[0].owner == ALICE.name  # a pin says who pinned it
    assert [h.owner for h in notebook.note_headings()] == [ALICE.name]
    with pytest.raises(NotAllowed, match=r"only its owner \(alice@lab\.org\) or an admin may edit note"):
        notebook.update_note(note, body_markdown="bob was here", by=BOB)
    with pytest.raises(NotAllowed, match="may delete note"):
        notebook.delete_note(note, by=BOB)
    assert notebook.get_note(note).body == "body"
    notebook.update_note(note, body_markdown="edited by alice", by=ALICE)
    notebook.update_note(note, title="and by an admin", by=ADMIN)
    assert (notebook.get_note(note).body, notebook.get_note(note).title) == ("edited by alice", "and by an admin")
    imported = notebook.import_journal_upload("### 2022.12.08\nprose\n".encode(), owner=BOB.name)
    assert notebook.get_note(imported[0]).owner == BOB.name
    notebook.delete_note(note, by=ALICE)
    assert [n.id for n in notebook.list_notes()] == imported


def test_runs_filter_by_owner_on_every_page_and_in_the_count(notebook):
    mine = [queued_run(notebook, ALICE.name) for _ in range(3)]
    theirs = queued_run(notebook, BOB.name)
    local = queued_run(notebook, None)
    sweep = jobs.submit_sweep(notebook, PRESETS["tiny"], {"optim.lr": [0.01, 0.02]}, name="s", preset="tiny",
                              owner=BOB.name)
    assert {notebook.get_run(i).owner for i in sweep.run_ids} == {BOB.name}
    page = notebook.runs_page(owner=ALICE.name, limit=2)
    assert [s.run.id for s in page.summaries] == mine[::-1][:2] and page.total == 3
    assert notebook.runs_page(owner=ALICE.name, limit=2, offset=10).total == 3  # past the last page too
    assert [r.id for r in notebook.list_runs(owner=BOB.name)] == [*sweep.run_ids[::-1], theirs]
    assert notebook.runs_page().total == 7 and local in [r.id for r in notebook.list_runs()]


# --- where the app may serve -------------------------------------------------------------------------------------

@pytest.mark.parametrize("address, loopback", [("127.0.0.1", True), ("127.0.1.1", True), ("::1", True),
                                               ("[::1]", True), ("localhost", True), ("0.0.0.0", False),
                                               ("::", False), ("", False), (None, False), ("192.0.2.2", False),
                                               ("notebook.lab.org", False)])
def test_only_loopback_addresses_are_loopback(address, loopback):
    assert is_loopback(address) is loopback


def test_sign_in_is_configured_only_with_everything_st_login_needs():
    assert sign_in_configured(AUTH)
    named = {k: AUTH[k] for k in ("redirect_uri", "cookie_secret")} | {"google": {
        k: AUTH[k] for k in ("client_id", "client_secret", "server_metadata_url")}}
    assert sign_in_configured(named)  # [auth.google]
    for missing in ("redirect_uri", "cookie_secret", "client_id", "server_metadata_url"):
        assert not sign_in_configured({k: v for k, v in AUTH.items() if k != missing}), missing
    assert not sign_in_configured({}) and not sign_in_configured(None)


def test_a_non_loopback_address_is_refused_unless_sign_in_or_allow_anonymous_and_the_refusal_says_what_to_do():
    refusal = refusal_to_serve("0.0.0.0", signed_in=False, allow_anonymous=False)
    assert "Refusing to serve on 0.0.0.0 without sign-in" in refusal
    assert "[auth]" in refusal and "secrets.toml" in refusal and "--allow-anonymous" in refusal
    assert "every interface" in refusal_to_serve("", signed_in=False, allow_anonymous=False)
    assert refusal_to_serve("0.0.0.0", signed_in=True, allow_anonymous=False) is None
    assert refusal_to_serve("0.0.0.0", signed_in=False, allow_anonymous=True) is None
    assert refusal_to_serve("127.0.0.1", signed_in=False, allow_anonymous=False) is None


def test_the_auth_section_is_read_as_streamlit_reads_it(tmp_path):
    first, second = tmp_path / "a.toml", tmp_path / "b.toml"
    first.write_text('[auth]\nredirect_uri = "http://x/oauth2callback"\ncookie_secret = "one"\n')
    second.write_text('[auth]\ncookie_secret = "two"\nclient_id = "c"\nserver_metadata_url = "https://m"\n'
                      '[notebook]\nadmins = ["a@lab.org"]\n')
    broken = tmp_path / "broken.toml"
    broken.write_text("[auth\n")
    auth = read_auth_section([first, tmp_path / "missing.toml", broken, second])
    assert auth["cookie_secret"] == "two" and sign_in_configured(auth)  # later files win, as in Streamlit
    flags = ["--secrets.files", str(first), "--server.baseUrlPath", "x", f"--secrets.files={second}"]
    assert secrets_files_in(flags) == [Path(first), Path(second)]


def test_python_m_app_refuses_before_starting_anything_and_will_not_be_given_the_address_twice(tmp_path, capsys):
    no_secrets = ["--secrets.files", str(tmp_path / "none.toml")]
    assert main(["--address", "192.0.2.2", *no_secrets]) == 2
    assert "Refusing to serve on 192.0.2.2 without sign-in" in capsys.readouterr().err
    assert main(["--server.address=0.0.0.0", *no_secrets]) == 2  # would bypass the check if passed on
    assert "--address and --port" in capsys.readouterr().err
