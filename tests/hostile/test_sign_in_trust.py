"""Sign-in that cannot be talked into trusting the wrong thing: an email the provider did not verify is never
taken for an admin's (the person is their subject at their issuer instead); a cookie secret copied from the
README, or one that does not look random, stops the app from starting; backups are for admins in team mode."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

from app.identity import person_from
from app.serving import cookie_secret_problem
from tests.app.test_owners import AUTH
from tests.app.conftest import ROOT, notebook, page  # noqa: F401 - `notebook`: the temporary notebook fixture
from tests.app.test_sign_in_pages import ADMIN, SECRETS

ISSUER = "https://id.lab.org"


def readme_auth_section() -> dict:
    """The `[auth]` example in the README, as a reader would copy it."""
    block = re.search(r"```toml\n(\[auth\].*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "the README's sign-in section has a ```toml [auth] example"
    return tomllib.loads(block.group(1))["auth"]


# --- email_verified -------------------------------------------------------------------------------------------

def test_an_unverified_email_is_not_the_person_and_never_an_admin():
    claims = {"is_logged_in": True, "email": ADMIN, "sub": "1234", "iss": ISSUER}
    for unverified in ({}, {"email_verified": False}, {"email_verified": "false"}, {"email_verified": None}):
        person = person_from({**claims, **unverified}, [ADMIN])
        assert person is not None and person.name == f"1234@{ISSUER}" and not person.is_admin, unverified
    for verified in (True, "true"):
        person = person_from({**claims, "email_verified": verified}, [ADMIN])
        assert person.name == ADMIN and person.is_admin
    # a subject that spells an admin's address is not the admin either
    assert not person_from({"is_logged_in": True, "sub": ADMIN}, [ADMIN]).is_admin


def a_run(notebook) -> int:
    """The runs page shows its backup box below the runs: it needs one."""
    return notebook.create_run({}, name="something to back up")


def test_on_the_pages_an_unverified_admin_email_signs_in_as_the_subject_without_admin_rights(notebook):
    a_run(notebook)
    user = {"is_logged_in": True, "email": ADMIN, "email_verified": False, "sub": "1234", "iss": ISSUER}
    app = page("runs", secrets=SECRETS, user=user)
    captions = [re.sub(r"\\(.)", r"\1", c.value) for c in app.sidebar.caption]  # as read: Markdown escaped
    assert f"Signed in as **1234@{ISSUER}**" in captions and not any("admin" in c for c in captions)
    assert next(b for b in app.button if b.label == "Back up now").disabled


# --- cookie_secret --------------------------------------------------------------------------------------------

def test_the_readme_cookie_secret_and_guessable_ones_are_refused_random_ones_accepted():
    readme = readme_auth_section()
    problem = cookie_secret_problem(readme)  # as the README shows it now: a placeholder
    assert problem and "secrets.token_hex(32)" in problem
    problem = cookie_secret_problem({**readme, "cookie_secret": "a long random string"})  # as it showed before
    assert problem and "README" in problem and "secrets.token_hex(32)" in problem
    for weak in ("s3cret", "a test cookie secret, long enough", "x" * 64, "0123" * 16, "A LONG RANDOM STRING"):
        assert cookie_secret_problem({**readme, "cookie_secret": weak}), weak
    assert cookie_secret_problem(AUTH) is None  # the page tests' random secret
    assert cookie_secret_problem({**readme, "cookie_secret": "Zq3_9vK-pX2mL7tRw8yB4nD6hJ1cF5gS0aE"}) is None
    assert cookie_secret_problem({}) is None  # single-user mode has no cookie to sign


def test_python_m_app_refuses_to_start_with_the_readme_cookie_secret(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(re.search(r"```toml\n(\[auth\].*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
                       .replace("…", "x"))
    refused = subprocess.run([sys.executable, "-m", "app", "--secrets.files", str(secrets)], cwd=ROOT,
                             capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert refused.returncode == 2, refused.stderr
    assert "cookie_secret" in refused.stderr and "secrets.token_hex(32)" in refused.stderr


def test_a_server_started_by_hand_with_the_readme_cookie_secret_shows_the_refusal_on_every_page(notebook):
    app = page("home", secrets={**SECRETS, "auth": {**AUTH, "cookie_secret": "a long random string"}},
               user={"is_logged_in": False})
    assert any("cookie_secret" in e.value and "token_hex" in e.value for e in app.error)
    assert not app.button  # not even the sign-in button


# --- backups ---------------------------------------------------------------------------------------------------

def test_a_signed_in_person_who_is_not_an_admin_cannot_back_up_and_an_admin_can(notebook, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_BACKUP_DIR", str(tmp_path / "backups"))
    a_run(notebook)
    user = {"is_logged_in": True, "email": "alice@lab.org", "email_verified": True, "sub": "alice"}
    app = page("runs", secrets=SECRETS, user=user)
    button = next(b for b in app.button if b.label == "Back up now")
    assert button.disabled and any("admins only" in c.value for c in app.caption)
    button._value = True  # a click that reaches the server anyway (a forged message: the UI would not send it)
    app.run()
    assert not (tmp_path / "backups").exists() and not app.success
    assert not [b for b in app.get("download_button") if "backup" in b.proto.label]

    admin = page("runs", secrets=SECRETS, user={**user, "email": ADMIN, "sub": "admin"})
    next(b for b in admin.button if b.label == "Back up now").click().run()
    assert list((tmp_path / "backups").glob("notebook-*.db")) and admin.success
