"""Sign-in for a team, in a real browser: the app (`python -m app`) with an `[auth]` section pointing at a local
OpenID provider (oidc-provider-mock, started here: its authorization page lets the test type the subject, whose
email claim is the same string). A visitor sees nothing but a sign-in button; two people sign in (two browser
contexts, two cookie jars), each launches a run and writes a note; each sees both runs, may stop only their own
(the other's Stop is disabled with the reason, and the jobs service refuses it too), and the journal names each
note's author. And `python -m app` refuses another address without sign-in, unless told --allow-anonymous."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lab_notes import Notebook
from tests.e2e.conftest import ROOT, free_port, shoot
from tests.helpers import answers, stop_processes, wait_for

ALICE, BOB = "alice@lab.org", "bob@lab.org"
PRESET = "2022-12-08-vit1"


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    """A local OpenID provider: any client id and secret are accepted, any subject can be typed in."""
    pytest.importorskip("oidc_provider_mock", reason="oidc-provider-mock (requirements.txt) is not installed")
    port = free_port()
    log = open(tmp_path_factory.mktemp("oidc") / "oidc.log", "wb")
    # the app trusts an email only when the provider verified it (`email_verified`)
    verified = [f"--user-claims={json.dumps({'sub': who, 'email': who, 'email_verified': True})}"
                for who in (ALICE, BOB)]
    server = subprocess.Popen([sys.executable, "-m", "oidc_provider_mock", "--port", str(port), *verified],
                              stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(f"{base}/.well-known/openid-configuration"), 60, "the OpenID provider")
        yield base
    finally:
        stop_processes([server], timeout=30)
        log.close()


def start_app(folder: Path, *flags: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    log = open(folder / "app.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "app", *flags], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "LAB_START_WORKER": "1", **(env or {})})


def stop_app(server: subprocess.Popen) -> None:
    stop_processes([server], timeout=30)


@pytest.fixture(scope="module")
def team_app(provider, tmp_path_factory):
    folder = tmp_path_factory.mktemp("team")
    port = free_port()
    secrets = folder / "secrets.toml"
    secrets.write_text(f'''
[auth]
redirect_uri = "http://127.0.0.1:{port}/oauth2callback"
cookie_secret = "1bbffb87d58f725d1ff1c620826b9d983ded2faa5ae6e5143463608591d4ea91"
client_id = "lab-notebook"
client_secret = "anything"
server_metadata_url = "{provider}/.well-known/openid-configuration"

[notebook]
admins = ["admin@lab.org"]
''')
    url = f"sqlite:///{folder / 'notebook.db'}"
    server = start_app(folder, "--port", str(port), "--secrets.files", str(secrets),
                       env={"LAB_NOTEBOOK_URL": url, "LAB_RUNS_DIR": str(folder / "runs")})
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/_stcore/health"), 90, "the app's health endpoint")
        yield {"base": f"http://127.0.0.1:{port}", "db": url, "folder": folder}
    finally:
        stop_app(server)
    with Notebook(url) as notebook:  # with sign-in the app starts no worker: the runs were never claimed
        assert not notebook.live_workers(60)
        assert {r.status for r in notebook.list_runs()} <= {"queued", "stopped"}


def person(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    return context, page


def sign_in(page, base: str, who: str) -> None:
    page.goto(base)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/oauth2/authorize.*"))  # the provider's page: type who you are
    page.locator("input[name=sub]").fill(who)
    page.get_by_role("button", name="Authorize").click()
    page.get_by_text(f"Signed in as {who}").wait_for()


def launch(page, base: str) -> int:
    page.goto(base)
    page.locator("[data-testid='stHorizontalBlock']", has_text=PRESET).last.get_by_role(
        "button", name="🚀 Launch").click()
    page.wait_for_url(re.compile(r".*/run\?run=\d+"))
    return int(re.search(r"run=(\d+)", page.url).group(1))


def write_note(page, base: str, title: str, db: str) -> None:
    """Write a note through the journal page, as a person does; confirmed in the notebook itself."""
    page.goto(f"{base}/journal")
    page.get_by_text("✍️ New note").click()
    title_box = page.get_by_label("Title").first
    for _ in range(3):
        title_box.fill(title)
        title_box.press("Enter")  # the value is the app's before Save is clicked (a click alone can race the blur)
        # Enter reruns the page; a click that lands mid-rerun was lost on a loaded machine (twice, waiting the
        # status widget out or not): so the notebook says whether it was saved, and a lost click is made again
        page.locator("[data-testid='stStatusWidget']").wait_for(state="hidden", timeout=60_000)
        page.get_by_role("button", name="Save note").first.click()
        if saved(db, title, seconds=45):
            break
    else:
        raise AssertionError(f"the note {title!r} was not saved after three clicks on Save note")
    page.get_by_text(title).wait_for(timeout=60_000)


def saved(db: str, title: str, seconds: float) -> bool:
    """Whether a note titled `title` is in the notebook within `seconds`."""
    with Notebook(db) as notebook:
        try:
            return wait_for(lambda: any(note.title == title for note in notebook.list_notes()), seconds,
                            f"the note {title!r}", every=0.2)
        except AssertionError:  # not saved: the caller clicks again
            return False


def test_a_visitor_sees_only_sign_in_and_each_person_stops_only_their_own_run(team_app, browser):
    from engine import jobs
    from engine.presets import PRESETS
    from lab_notes.owners import NotAllowed, Person

    base = team_app["base"]
    with Notebook(team_app["db"]) as notebook:  # something a visitor must not see
        notebook.create_run(PRESETS[PRESET].model_dump(mode="json"), name="carol's secret run", preset=PRESET,
                        owner="carol@lab.org")
        notebook.add_note(None, "carol's secret note", "the body", owner="carol@lab.org")
    (alice_context, alice), (bob_context, bob) = person(browser), person(browser)
    try:
        for path in ("", "/runs", "/journal", "/new", "/run?run=1"):
            alice.goto(base + path)
            alice.get_by_role("button", name="Sign in").wait_for()
            shown = alice.locator("[data-testid='stAppViewContainer']").inner_text()
            assert "secret" not in shown and "Launch" not in shown and "Latest runs" not in shown, (path, shown)
            assert alice.locator("input, textarea").count() == 0, path  # no form of any kind
        shoot(alice, "sign-in-1-visitor")

        sign_in(alice, base, ALICE)
        sign_in(bob, base, BOB)
        alices_run, bobs_run = launch(alice, base), launch(bob, base)
        with Notebook(team_app["db"]) as notebook:
            assert notebook.get_run(alices_run).owner == ALICE and notebook.get_run(bobs_run).owner == BOB

        # Each sees both runs, with who launched them.
        for page in (alice, bob):
            page.goto(base)
            for run_id, owner in ((alices_run, ALICE), (bobs_run, BOB)):
                page.locator("[data-testid='stHorizontalBlock']", has_text=f"{run_id} · {PRESET}").get_by_text(
                    f"by {owner}").wait_for()

        # Bob may not stop Alice's run: the button is disabled and says why ...
        bob.goto(f"{base}/run?run={alices_run}")
        bob.get_by_role("heading", name=re.compile(rf"Run {alices_run} — ")).wait_for()
        assert bob.get_by_role("button", name="⏹ Stop").is_disabled()
        bob.get_by_text(f"only its owner ({ALICE}) or an admin may stop run {alices_run}").wait_for()
        shoot(bob, "sign-in-2-not-yours")
        with Notebook(team_app["db"]) as notebook:  # ... and the jobs service refuses it all the same
            with pytest.raises(NotAllowed, match=f"only its owner \\({re.escape(ALICE)}\\)"):
                jobs.request_stop(notebook, alices_run, by=Person(BOB))
            assert notebook.get_run(alices_run).status == "queued"
        # ... but may stop his own.
        bob.goto(f"{base}/run?run={bobs_run}")
        bob.get_by_role("button", name="⏹ Stop").click()
        bob.get_by_text("stopped", exact=True).first.wait_for()
        alice.goto(f"{base}/run?run={alices_run}")
        alice.get_by_role("button", name="⏹ Stop").click()
        alice.get_by_text("stopped", exact=True).first.wait_for()
        with Notebook(team_app["db"]) as notebook:
            assert notebook.get_run(alices_run).status == notebook.get_run(bobs_run).status == "stopped"

        # The journal names each note's author; only the author may edit.
        write_note(alice, base, "alice's note", team_app["db"])
        write_note(bob, base, "bob's note", team_app["db"])
        alice.goto(f"{base}/journal")
        for title, author in (("alice's note", ALICE), ("bob's note", BOB)):
            alice.get_by_text(title).wait_for()
            alice.get_by_text(f"by {author}").first.wait_for()
        alice.get_by_text("carol's secret note").wait_for()  # the last of the three, newest first
        edit_buttons = alice.get_by_role("button", name="Edit", exact=True)
        wait_for(lambda: edit_buttons.count() == 3, 30, "an Edit button under each of the three notes")
        enabled = [edit_buttons.nth(i).is_enabled() for i in range(3)]
        assert sorted(enabled) == [False, False, True]  # hers; not Bob's, nor Carol's
        shoot(alice, "sign-in-3-journal-authors")
    finally:
        alice_context.close()
        bob_context.close()


def test_the_app_refuses_another_address_without_sign_in_and_serves_with_allow_anonymous(tmp_path):
    address = "0.0.0.0"  # every interface: certainly not loopback, and present on every machine
    no_secrets = ["--secrets.files", str(tmp_path / "none.toml")]  # whatever ~/.streamlit holds
    refused = subprocess.run([sys.executable, "-m", "app", "--address", address, "--port", str(free_port()),
                              *no_secrets], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2, refused
    assert f"Refusing to serve on {address} without sign-in" in refused.stderr
    assert "--allow-anonymous" in refused.stderr and "secrets.toml" in refused.stderr

    port = free_port()
    server = start_app(tmp_path, "--address", address, "--port", str(port), "--allow-anonymous", *no_secrets,
                       env={"LAB_NOTEBOOK_URL": f"sqlite:///{tmp_path / 'notebook.db'}",
                            "LAB_START_WORKER": "0"})
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/_stcore/health"), 90, "the app's health endpoint")
        assert server.poll() is None
    finally:
        stop_app(server)
