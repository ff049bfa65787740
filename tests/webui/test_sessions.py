"""Session cookies and CSRF tokens, without a server: forged, expired and cross-session tokens are refused."""

from __future__ import annotations

from service.security import TokenHasher
from webui.sessions import SESSION_SECONDS, SessionSigner

LEGACY_KEY = b"k" * 32
LEGACY_COOKIE = (  # as Airlock issued it before session generations: {"u", "n", "e", "c"}, no "g"
    "eyJ1IjogImFuYSIsICJuIjogIngiLCAiZSI6IDE4MDAwMDAwNjAsICJjIjogIiJ9.hW6OPVbH3uM71sc3DLw0wJt-nA5Uj4Kr_aFedYDvS_o"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def signer(clock: Clock, pepper: bytes = b"pepper-0123456789abcdef") -> SessionSigner:
    return SessionSigner.from_hasher(TokenHasher(pepper), clock)


def test_a_cookie_reads_back_until_it_expires() -> None:
    clock = Clock()
    cookie, issued = signer(clock).issue("ana")
    assert signer(clock).read(cookie) == issued
    clock.now += SESSION_SECONDS + 1
    assert signer(clock).read(cookie) is None


def test_a_changed_or_foreign_cookie_is_refused() -> None:
    clock = Clock()
    cookie, _ = signer(clock).issue("ana")
    payload, signature = cookie.rsplit(".", 1)
    other_payload, _ = signer(clock).issue("root")[0].rsplit(".", 1)
    assert signer(clock).read(f"{other_payload}.{signature}") is None  # root's payload under ana's signature
    assert signer(clock, b"another-pepper-0123456789").read(cookie) is None  # another server's key
    for bad in ("", "no-dot", f"{payload}.", f"!!!.{signature}"):
        assert signer(clock).read(bad) is None


def test_csrf_tokens_are_bound_to_their_session() -> None:
    clock = Clock()
    one = signer(clock).issue("ana")[1]
    two = signer(clock).issue("ana")[1]
    token = signer(clock).csrf_token(one)
    assert signer(clock).csrf_ok(one, token)
    assert not signer(clock).csrf_ok(two, token)
    assert not signer(clock).csrf_ok(one, None)
    assert not signer(clock).csrf_ok(one, "")


def test_the_login_form_token_matches_only_its_cookie() -> None:
    clock = Clock()
    nonce = SessionSigner.new_login_nonce()
    token = signer(clock).login_csrf_token(nonce)
    assert signer(clock).login_csrf_ok(nonce, token)
    assert not signer(clock).login_csrf_ok(SessionSigner.new_login_nonce(), token)
    assert not signer(clock).login_csrf_ok(None, token)


def test_a_cookie_carries_the_session_generation_it_was_issued_under() -> None:
    clock = Clock()
    cookie, issued = signer(clock).issue("ana", "hash", generation=3)
    read = signer(clock).read(cookie)
    assert read is not None and read.generation == issued.generation == 3
    # A cookie from before generations existed reads as generation 0, the value every user starts with.
    legacy = SessionSigner(LEGACY_KEY, clock).read(LEGACY_COOKIE)
    assert legacy is not None and legacy.username == "ana" and legacy.generation == 0
