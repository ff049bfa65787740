"""The linking rules (service/oidc/service.py) on SQLite and PostgreSQL, given identities as a verified ID token
would carry them; the provider's side is tests/oidc/test_sign_in.py's."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from service.errors import Forbidden
from service.oidc import service as linking
from service.oidc.config import OIDCProviderSettings, RoleName
from service.oidc.roles import role_from_groups
from service.security import TokenHasher
from service.users.models import Role
from service.users.service import create_user, get_user, list_users

CORP = OIDCProviderSettings(
    issuer="https://corp.example.com",
    client_id="airlock",
    client_secret="secret",
    roles={"admin": ["admins"], "approver": ["approvers"]},
    match_verified_email=True,
    create_users=True,
)
OTHER = CORP.model_copy(update={"issuer": "https://other.example.com"})


def test_the_highest_mapped_role_wins_else_the_default_else_refused() -> None:
    mapping: dict[RoleName, list[str]] = {"admin": ["admins"], "approver": ["approvers", "leads"]}
    assert role_from_groups(["leads", "admins"], mapping, "viewer") is Role.ADMIN
    assert role_from_groups(["leads"], mapping, None) is Role.APPROVER
    assert role_from_groups(["sales"], mapping, "viewer") is Role.VIEWER
    assert role_from_groups([], mapping, None) is None


def test_a_second_sign_in_finds_the_link_whatever_the_email_says_by_then(session: Session, hasher: TokenHasher) -> None:
    first = linking.sign_in(
        session, hasher, "corp", CORP, linking.Identity("s1", "kim@example.com", True, ("approvers",), "kim")
    )
    again = linking.sign_in(
        session, hasher, "corp", CORP, linking.Identity("s1", "new@example.com", True, ("approvers",))
    )
    assert first.id == again.id and again.username == "corp-kim"


def test_a_new_user_takes_a_free_name_and_keeps_only_a_verified_email(session: Session, hasher: TokenHasher) -> None:
    create_user(session, hasher, username="corp-kim", role=Role.VIEWER, actor="test")
    user = linking.sign_in(session, hasher, "corp", CORP, linking.Identity("s2", "kim@b.example", False, (), "kim"))
    assert user.username == "corp-kim-2" and user.email is None and user.role is Role.VIEWER


def test_a_new_user_cannot_take_a_name_that_does_not_exist_yet(session: Session, hasher: TokenHasher) -> None:
    """A policy may list `ana` among its approvers before Ana has a user: whoever calls themselves ana at the provider
    must not become her."""
    user = linking.sign_in(session, hasher, "corp", CORP, linking.Identity("s9", "x@evil.example", True, (), "ana"))
    assert user.username == "corp-ana"
    from_email = linking.sign_in(session, hasher, "corp", CORP, linking.Identity("s10", "bo@corp.example", True))
    assert from_email.username == "corp-bo"


def test_a_user_matched_by_email_keeps_their_name(session: Session, hasher: TokenHasher) -> None:
    create_user(session, hasher, username="ana", role=Role.VIEWER, actor="test", email="ana@corp.example")
    user = linking.sign_in(session, hasher, "corp", CORP, linking.Identity("s11", "ana@corp.example", True, (), "x"))
    assert user.username == "ana"


def test_creating_users_is_off_unless_the_config_turns_it_on(session: Session, hasher: TokenHasher) -> None:
    default = OIDCProviderSettings(issuer="https://corp.example.com", client_id="airlock", client_secret="secret")
    assert default.create_users is False
    with pytest.raises(Forbidden, match="does not create new ones"):
        linking.sign_in(session, hasher, "corp", default, linking.Identity("s12", "new@corp.example", True))
    assert all(user.email != "new@corp.example" for user in list_users(session))


def test_a_non_ascii_email_never_matches_an_existing_user(session: Session, hasher: TokenHasher) -> None:
    """U+212A KELVIN SIGN lower-cases to "k" in Python and in PostgreSQL, not in SQLite."""
    create_user(session, hasher, username="kim", role=Role.ADMIN, actor="test", email="kim@corp.example")
    create_user(session, hasher, username="kel", role=Role.ADMIN, actor="test", email="\u212ael@corp.example")
    kelvin = linking.sign_in(session, hasher, "corp", CORP, linking.Identity("s13", "\u212aim@corp.example", True))
    assert kelvin.username not in ("kim", "kel") and kelvin.role is Role.VIEWER
    ascii_kel = linking.sign_in(session, hasher, "corp", CORP, linking.Identity("s14", "KEL@corp.example", True))
    assert ascii_kel.username not in ("kim", "kel") and ascii_kel.role is Role.VIEWER
    upper = linking.sign_in(session, hasher, "corp", CORP, linking.Identity("s15", "KIM@Corp.Example", True))
    assert upper.username == "kim"


GOOGLE = CORP.model_copy(update={"issuer": "https://accounts.google.com", "allowed_domains": ["corp.example"]})


@pytest.mark.parametrize(
    ("identity", "allowed"),
    [
        (linking.Identity("g1", "a@corp.example", True, hosted_domain="corp.example"), True),
        (linking.Identity("g2", "a@Corp.Example", True), True),
        (linking.Identity("g3", "a@gmail.com", True, hosted_domain="CORP.example"), True),
        (linking.Identity("g4", "a@corp.example", False), False),
        (linking.Identity("g5", "a@corp.example", True, hosted_domain="other.example"), False),
        (linking.Identity("g6", "a@gmail.com", True), False),
        (linking.Identity("g7", "a@corp.example.evil", True), False),
        (linking.Identity("g8", None, False, hosted_domain=None), False),
        (linking.Identity("g9", "a@\u212aorp.example", True), False),
    ],
)
def test_allowed_domains_come_from_hd_else_the_verified_email(
    session: Session, hasher: TokenHasher, identity: linking.Identity, allowed: bool
) -> None:
    if allowed:
        assert linking.sign_in(session, hasher, "google", GOOGLE, identity).role is Role.VIEWER
    else:
        with pytest.raises(Forbidden, match=r"only accounts of corp\.example"):
            linking.sign_in(session, hasher, "google", GOOGLE, identity)
        assert list_users(session) == []


def test_allowed_domains_hold_at_every_sign_in_not_only_the_first(session: Session, hasher: TokenHasher) -> None:
    linking.sign_in(session, hasher, "google", GOOGLE, linking.Identity("g10", "a@corp.example", True))
    with pytest.raises(Forbidden, match="only accounts of"):
        linking.sign_in(session, hasher, "google", GOOGLE, linking.Identity("g10", "a@gmail.com", True))


def test_an_email_shared_by_two_users_links_to_neither(session: Session, hasher: TokenHasher) -> None:
    for name in ("lee", "lee2"):
        create_user(session, hasher, username=name, role=Role.VIEWER, actor="test", email="lee@example.com")
    with pytest.raises(Forbidden, match="several"):
        linking.sign_in(session, hasher, "corp", CORP, linking.Identity("s3", "lee@example.com", True))


def test_no_takeover_of_a_linked_user_from_another_issuer(session: Session, hasher: TokenHasher) -> None:
    create_user(session, hasher, username="ron", role=Role.ADMIN, actor="test", email="ron@example.com")
    linking.sign_in(session, hasher, "corp", CORP, linking.Identity("s4", "ron@example.com", True, ("admins",)))
    with pytest.raises(Forbidden, match="already linked"):
        linking.sign_in(session, hasher, "other", OTHER, linking.Identity("x4", "ron@example.com", True, ("admins",)))
    assert get_user(session, "ron").role is Role.ADMIN


def test_matching_off_or_creation_off_refuses(session: Session, hasher: TokenHasher) -> None:
    create_user(session, hasher, username="sue", role=Role.VIEWER, actor="test", email="sue@example.com")
    no_matching = CORP.model_copy(update={"match_verified_email": False})
    with pytest.raises(Forbidden, match="may not link"):
        linking.sign_in(session, hasher, "corp", no_matching, linking.Identity("s5", "sue@example.com", True))
    no_creation = CORP.model_copy(update={"create_users": False})
    with pytest.raises(Forbidden, match="no Airlock user"):
        linking.sign_in(session, hasher, "corp", no_creation, linking.Identity("s6", "new@example.com", True))


def test_a_new_role_raises_the_session_generation(session: Session, hasher: TokenHasher) -> None:
    linking.sign_in(session, hasher, "corp", CORP, linking.Identity("s6", None, False, ("admins",), "ray"))
    user = linking.sign_in(session, hasher, "corp", CORP, linking.Identity("s7", None, False, ("admins",), "tia"))
    generation = user.session_generation
    demoted = linking.sign_in(session, hasher, "corp", CORP, linking.Identity("s7", None, False, ("approvers",)))
    assert demoted.role is Role.APPROVER and demoted.session_generation > generation
    same = linking.sign_in(session, hasher, "corp", CORP, linking.Identity("s7", None, False, ("approvers",)))
    assert same.session_generation == demoted.session_generation


def test_a_sign_in_does_not_demote_the_last_active_admin(session: Session, hasher: TokenHasher) -> None:
    from service.errors import Conflict

    linking.sign_in(session, hasher, "corp", CORP, linking.Identity("s9", None, False, ("admins",), "ivy"))
    with pytest.raises(Conflict, match="corp-ivy is the last active admin"):
        linking.sign_in(session, hasher, "corp", CORP, linking.Identity("s9", None, False, ("approvers",)))
    assert get_user(session, "corp-ivy").role is Role.ADMIN


def test_a_subject_linked_twice_at_once_is_a_conflict_not_a_crash(session: Session, hasher: TokenHasher) -> None:
    """Two first sign-ins of one person racing: the second insert of (issuer, subject) loses cleanly."""
    from service.errors import Conflict
    from service.oidc.models import OIDCLink
    from service.oidc.repository import OIDCLinkRepository

    user = linking.sign_in(session, hasher, "corp", CORP, linking.Identity("s8", None, False, (), "uma"))
    assert user.id is not None
    with pytest.raises(Conflict):
        OIDCLinkRepository(session).add(OIDCLink(user_id=user.id, issuer=CORP.issuer, subject="s8"))
    assert OIDCLinkRepository(session).by_subject(CORP.issuer, "s8") is not None
