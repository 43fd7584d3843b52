"""Who is using the app: sign-in with Streamlit's own `st.login` (OpenID Connect, configured in
`.streamlit/secrets.toml` `[auth]`), the person every page acts as, and the admins (`[notebook] admins`). Without
an `[auth]` section the app is in single-user mode: one local user who may do everything, as before sign-in
existed."""

from __future__ import annotations

import os
from typing import Any, Mapping

import streamlit as st

from app.literal import literal
from app.serving import ALLOW_ANONYMOUS_ENV, cookie_secret_problem, refusal_to_serve, sign_in_configured
from lab_notes import LOCAL_USER, Person, is_admin


def secrets_section(name: str) -> Mapping[str, Any]:
    """A secrets.toml section, or {} when there is no secrets file or no such section (a missing file would
    otherwise raise on first access)."""
    if not st.secrets.load_if_toml_exists():
        return {}
    section = st.secrets.get(name)
    return section if isinstance(section, Mapping) else {}


def sign_in_is_on() -> bool:
    """Team mode: sign-in is configured, so every page needs a signed-in person."""
    return sign_in_configured(secrets_section("auth"))


def admins() -> list[str]:
    """`[notebook] admins = ["a@lab.org", …]`: people who may stop, resume, delete and edit anyone's."""
    listed = secrets_section("notebook").get("admins", [])
    return [listed] if isinstance(listed, str) else [str(a) for a in listed]


def person_from(user: Mapping[str, Any], admin_names: list[str]) -> Person | None:
    """The signed-in person from `st.user`'s claims; None when nobody is signed in. Their email only when the
    provider says it verified it (`email_verified`): anyone can put any address on an account at many
    providers, and an unverified one must not pass for an admin's. Otherwise their subject with its issuer
    ("SUB@ISSUER": stable, unique across providers), which is never an admin."""
    if not user.get("is_logged_in"):
        return None
    if user.get("email") and email_is_verified(user.get("email_verified")):
        name = str(user["email"])
        return Person(name, is_admin=is_admin(name, admin_names))
    subject = user.get("sub")
    if not subject:
        return None
    issuer = user.get("iss")
    return Person(f"{subject}@{issuer}" if issuer else str(subject), is_admin=False)


def email_is_verified(claim: Any) -> bool:
    """`email_verified` as providers send it: a JSON boolean, or (some, e.g. Cognito) the string "true"."""
    return claim is True or (isinstance(claim, str) and claim.strip().lower() == "true")


def current_person() -> Person:
    """Whom this page acts as: the signed-in person in team mode, the local user in single-user mode. Only
    called after `require_sign_in` let the page through, so team mode always has someone here."""
    if not sign_in_is_on():
        return LOCAL_USER
    person = person_from(st.user.to_dict(), admins())
    if person is None:  # a page drawn without the gate (it should not happen): act as nobody, never as admin
        return Person("(not signed in)")
    return person


def owner_to_record() -> str | None:
    """What a new run, note or pin records as its owner: the signed-in person's name; None in single-user mode."""
    return current_person().name


def refuse_to_serve_here() -> None:
    """For a server started by hand (`streamlit run …`, bypassing `python -m app`'s checks) with a guessable
    cookie secret, or on another address (`--server.address 0.0.0.0`) without sign-in: every page shows why
    and stops ($LAB_ALLOW_ANONYMOUS=1, what `python -m app --allow-anonymous`
    sets, serves anyway)."""
    refusal = cookie_secret_problem(secrets_section("auth")) or refusal_to_serve(
        st.get_option("server.address"), signed_in=sign_in_is_on(),
        allow_anonymous=os.environ.get(ALLOW_ANONYMOUS_ENV) == "1")
    if refusal:
        st.error(refusal)
        st.stop()


def require_sign_in() -> None:
    """In team mode, a visitor who is not signed in sees only a sign-in button: no run, note or form."""
    if not sign_in_is_on() or person_from(st.user.to_dict(), admins()) is not None:
        return
    st.title("Lab notebook")
    st.write("This notebook is shared by a team: sign in to see and launch runs and to write in the journal.")
    if st.button("Sign in", type="primary", key="sign_in"):
        st.login()
    st.stop()


def signed_in_box() -> None:
    """The sidebar's line saying who is signed in, with a way out (team mode only)."""
    if not sign_in_is_on():
        return
    person = current_person()
    st.caption(f"Signed in as **{literal(person.in_words)}**" + (" · admin" if person.is_admin else ""))
    if st.button("Sign out", key="sign_out"):
        st.logout()


WHOSE = ("Everyone's", "Mine")


def owner_for(choice: str, person: Person) -> str | None:
    """The owner a "Mine / Everyone's" choice keeps (None: everyone's)."""
    return person.name if choice == "Mine" else None


def whose_filter(key: str) -> str | None:
    """A "Mine / Everyone's" choice in team mode (everyone's first: a team notebook is read together); nothing
    in single-user mode, where everything is the local user's. Returns the owner to keep, None for everyone's."""
    if not sign_in_is_on():
        return None
    choice = st.segmented_control("Whose", WHOSE, default=WHOSE[0], required=True, key=key)
    return owner_for(choice, current_person())


def made_by(items: list, owner: str | None) -> list:
    """`items` (runs, notes: anything with an `owner`) made by `owner`; all of them when `owner` is None."""
    return items if owner is None else [item for item in items if item.owner == owner]


def author_in_words(owner: str | None) -> str:
    """A run's or note's author as a page shows it: their name, or the local user (made before sign-in)."""
    return owner or "the local user"
