"""Who may change what: the one rule, a pure function, that pages ask to hide or disable a button (with the
reason) and that the action layer (`engine.jobs`, `NotesStore`) asks again before it writes — so a button that
should have been disabled, a stale page or a hand-made request is refused all the same."""

from __future__ import annotations

from dataclasses import dataclass

from lab_notes.runs import Refused


@dataclass(frozen=True)
class Person:
    """Who asks. `name` is the signed-in user's email (else their OpenID subject); None is the local user of
    single-user mode, who may do everything."""

    name: str | None
    is_admin: bool = False

    @property
    def in_words(self) -> str:
        return self.name or "the local user"


LOCAL_USER = Person(None, is_admin=True)  # single-user mode (no sign-in): one person, everything allowed


@dataclass(frozen=True)
class Permission:
    """Whether `person` may do it and, when not, why (in words a page can show as it is)."""

    allowed: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.allowed


class NotAllowed(Refused):
    """Someone asked to change what is not theirs (and is not an admin). A Refused, so every place that shows a
    refusal (pages, CLI) shows this one too."""


def may_change(person: Person, owner: str | None, what: str) -> Permission:
    """Whether `person` may stop, resume, delete or edit `what` (e.g. "stop run 3"), made by `owner` (None: the
    local user, i.e. before sign-in): its owner and admins may; nobody else."""
    if person.is_admin or (person.name is not None and same_person(person.name, owner)):
        return Permission(True)
    made_by = owner if owner is not None else "the local user, before sign-in"
    return Permission(False, f"only its owner ({made_by}) or an admin may {what}; you are {person.in_words}")


def refuse_unless_allowed(person: Person, owner: str | None, what: str) -> None:
    """The action layer's check: raise NotAllowed with the reason when `may_change` says no."""
    permission = may_change(person, owner, what)
    if not permission:
        raise NotAllowed(permission.reason)


def same_person(name: str, owner: str | None) -> bool:
    """Emails compare without case (providers differ in how they spell them back); subjects are exact strings
    but never contain '@', so this is exact for them too."""
    return owner is not None and (name == owner or ("@" in name and name.casefold() == owner.casefold()))


def is_admin(name: str | None, admins: list[str] | tuple[str, ...]) -> bool:
    return name is not None and any(same_person(name, admin) for admin in admins)
