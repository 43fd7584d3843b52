"""Where the app may serve: without sign-in, anyone who reaches the port can read, launch and delete, so the app
serves on loopback only unless sign-in is configured or anonymous access is asked for explicitly. Pure functions
(no Streamlit): `python -m app` decides before the server starts, and the app's script decides again for a
server started by hand (`streamlit run … --server.address 0.0.0.0`)."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Any, Iterable, Mapping

ALLOW_ANONYMOUS_ENV = "LAB_ALLOW_ANONYMOUS"  # "1": what --allow-anonymous sets for the app's script
# The sign-in cookie is signed with `cookie_secret`: whoever knows it can sign in as anyone, admins included.
COOKIE_SECRET_AT_LEAST = 32
COOKIE_SECRET_DISTINCT_AT_LEAST = 10  # a token_hex has 16; "aaaa…" or "0123012301…" is not a secret
README_COOKIE_SECRETS = ("a long random string",)  # the examples the README shows: copied, they are public
MAKE_A_COOKIE_SECRET = 'python -c "import secrets; print(secrets.token_hex(32))"'


def is_loopback(address: str | None) -> bool:
    """127.0.0.0/8, ::1 and localhost are loopback; "" or None (Streamlit's default: every interface), 0.0.0.0,
    :: and any other address or name are not."""
    if not address:
        return False
    if address.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything: not loopback


def sign_in_configured(auth: Mapping[str, Any] | None) -> bool:
    """Whether a secrets.toml `[auth]` section is complete enough for `st.login()`: a redirect URI, a cookie
    secret, and a provider's client id and metadata URL (at the top of `[auth]`, or in a named `[auth.NAME]`)."""
    if not auth or not auth.get("redirect_uri") or not auth.get("cookie_secret"):
        return False
    providers = [auth, *(section for section in auth.values() if isinstance(section, Mapping))]
    return any(p.get("client_id") and p.get("server_metadata_url") for p in providers)


def cookie_secret_problem(auth: Mapping[str, Any] | None) -> str | None:
    """Why `[auth] cookie_secret` must not be used, in words; None when it looks like a real secret (at least
    32 characters, no spaces, not a README example, not one character pattern) or sign-in is not configured."""
    if auth is None or not sign_in_configured(auth):
        return None
    secret = str(auth.get("cookie_secret"))
    if secret.strip().lower() in README_COOKIE_SECRETS:
        problem = "is the README's example, which anyone can read"
    elif len(secret) < COOKIE_SECRET_AT_LEAST:
        problem = f"is {len(secret)} characters long; it needs at least {COOKIE_SECRET_AT_LEAST}"
    elif any(c.isspace() for c in secret):
        problem = "contains spaces: it reads like words, and words are guessed"
    elif len(set(secret)) < COOKIE_SECRET_DISTINCT_AT_LEAST:
        problem = f"uses only {len(set(secret))} different characters: it does not look random"
    else:
        return None
    return (f"[auth] cookie_secret {problem}. Whoever knows the cookie secret can sign in as anyone, admins "
            f"included. Make one with: {MAKE_A_COOKIE_SECRET}")


def refusal_to_serve(address: str | None, *, signed_in: bool, allow_anonymous: bool) -> str | None:
    """Why the app must not serve on `address`, in words; None when it may (loopback, sign-in configured, or
    anonymous access asked for)."""
    if is_loopback(address) or signed_in or allow_anonymous:
        return None
    where = address or "every interface"
    return (f"Refusing to serve on {where} without sign-in: anyone who reaches it could read, launch and delete "
            "runs and notes. Configure sign-in (an [auth] section in .streamlit/secrets.toml, see the README), "
            "serve on 127.0.0.1, or pass --allow-anonymous to serve it to everyone on that network anyway.")


def read_auth_section(files: Iterable[Path]) -> dict[str, Any]:
    """The `[auth]` section as Streamlit would see it: later files override earlier ones, missing or unreadable
    files are skipped (Streamlit skips them too)."""
    merged: dict[str, Any] = {}
    for file in files:
        try:
            auth = tomllib.loads(Path(file).read_text()).get("auth")
        except (OSError, tomllib.TOMLDecodeError):
            continue
        if isinstance(auth, dict):
            merged.update(auth)
    return merged


def default_secrets_files(script: Path, cwd: Path, home: Path) -> list[Path]:
    """Where Streamlit looks for secrets.toml when not told (`secrets.files`): the user's, the project's (the
    working folder's), then the script's folder's, later ones winning."""
    files = [home / ".streamlit" / "secrets.toml", cwd / ".streamlit" / "secrets.toml",
             script.parent / ".streamlit" / "secrets.toml"]
    return list(dict.fromkeys(files))
