"""Web sessions in a signed cookie, and the CSRF tokens bound to them.

A session cookie is `payload.signature`, where the payload names the user, a random nonce, the expiry and the user's
session generation, and the signature is an HMAC under a key derived from the server's secret key (so replicas that
share the secret share sessions). The cookie alone is not enough: the user's generation in the database must still be
the cookie's, and signing out raises it (webui.auth). The CSRF token of a session is an HMAC of its nonce: a page can
only carry it if Airlock rendered it. Before login there is no session, so the login form is protected by a random
cookie and the HMAC of it. The clock is injected so that expiry can be tested without waiting.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from service.security import TokenHasher, same_secret

SESSION_COOKIE = "airlock_session"
LOGIN_COOKIE = "airlock_login"
SESSION_SECONDS = 12 * 3600
_KEY_LABEL = "airlock:web-session-key:v1"


@dataclass(frozen=True)
class WebSession:
    username: str
    nonce: str
    expires_at: float
    credential: str = ""
    """A keyed digest of the user's password hash when the session began: a new password ends every session."""
    generation: int = 0
    """The user's session generation when the session began: raising it (sign-out, a new role) ends every session."""


class SessionSigner:
    def __init__(self, key: bytes, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._clock = clock

    @classmethod
    def from_hasher(cls, hasher: TokenHasher, clock: Callable[[], float] = time.time) -> SessionSigner:
        """The session key is the HMAC of a fixed label under the server's pepper: never the pepper itself."""
        return cls(bytes.fromhex(hasher.hash(_KEY_LABEL)), clock)

    def _sign(self, purpose: str, value: str) -> str:
        mac = hmac.new(self._key, f"{purpose}:{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")

    def credential_of(self, password_hash: str) -> str:
        return self._sign("credential", password_hash)[:22]

    def issue(self, username: str, password_hash: str = "", generation: int = 0) -> tuple[str, WebSession]:
        session = WebSession(
            username,
            secrets.token_urlsafe(16),
            self._clock() + SESSION_SECONDS,
            self.credential_of(password_hash),
            generation,
        )
        body = json.dumps(
            {
                "u": session.username,
                "n": session.nonce,
                "e": int(session.expires_at),
                "c": session.credential,
                "g": session.generation,
            }
        )
        payload = base64.urlsafe_b64encode(body.encode("utf-8")).decode("ascii").rstrip("=")
        return f"{payload}.{self._sign('session', payload)}", session

    def read(self, cookie: str | None) -> WebSession | None:
        """The session in a cookie, or None when it is missing, forged or expired."""
        if not cookie or "." not in cookie:
            return None
        payload, signature = cookie.rsplit(".", 1)
        if not same_secret(signature, self._sign("session", payload)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            session = WebSession(
                str(data["u"]), str(data["n"]), float(data["e"]), str(data.get("c", "")), int(data.get("g", 0))
            )
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires_at > self._clock() else None

    def csrf_token(self, session: WebSession) -> str:
        return self._sign("csrf", session.nonce)

    def csrf_ok(self, session: WebSession, token: str | None) -> bool:
        return bool(token) and same_secret(str(token), self.csrf_token(session))

    def seal(self, purpose: str, data: dict[str, str], seconds: float) -> str:
        """A signed (not encrypted) cookie value holding `data` until `seconds` from now."""
        body = json.dumps({"d": data, "e": int(self._clock() + seconds)})
        payload = base64.urlsafe_b64encode(body.encode("utf-8")).decode("ascii").rstrip("=")
        return f"{payload}.{self._sign(purpose, payload)}"

    def unseal(self, purpose: str, value: str | None) -> dict[str, str] | None:
        """What `seal` put in, or None when it is missing, forged, for another purpose or expired."""
        if not value or "." not in value:
            return None
        payload, signature = value.rsplit(".", 1)
        if not same_secret(signature, self._sign(purpose, payload)):
            return None
        try:
            body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            data, expires_at = body["d"], float(body["e"])
        except (ValueError, KeyError, TypeError):
            return None
        if expires_at <= self._clock() or not isinstance(data, dict):
            return None
        return {str(k): str(v) for k, v in data.items()}

    @staticmethod
    def new_login_nonce() -> str:
        return secrets.token_urlsafe(16)

    def login_csrf_token(self, nonce: str) -> str:
        return self._sign("login", nonce)

    def login_csrf_ok(self, nonce: str | None, token: str | None) -> bool:
        return bool(nonce) and bool(token) and same_secret(str(token), self.login_csrf_token(str(nonce)))
