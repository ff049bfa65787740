"""Secrets at rest.

Tokens (grants, API tokens) are random with 256 bits of entropy, so they are stored as HMAC-SHA256 with a
server-side pepper: fast enough to check on every request, and useless to anyone who steals the table
without the pepper. Passwords, which people choose, are hashed with argon2.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from service.config import Settings
from service.db.files import private_folder
from service.errors import ConfigInvalid

_password_hasher = PasswordHasher()
SECRET_FILE_NAME = "secret.key"  # noqa: S105 - a file name, not a secret


class TokenHasher:
    def __init__(self, pepper: bytes) -> None:
        if len(pepper) < 16:
            raise ConfigInvalid("secret_key must be at least 16 characters long")
        self._pepper = pepper

    def hash(self, token: str) -> str:
        return hmac.new(self._pepper, token.encode("utf-8"), hashlib.sha256).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    """Constant-time equality of a secret somebody sent (a signature, a CSRF token) and the one expected. Compared as
    UTF-8 bytes: hmac.compare_digest raises TypeError on text with non-ASCII characters, which made a forged
    cookie or form field a 500."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def new_token(kind: str) -> str:
    """A bearer token whose prefix says what it is for (alk_ grants, alku_ users' API tokens)."""
    return f"{kind}_{secrets.token_urlsafe(32)}"


def token_prefix(token: str) -> str:
    return token[:12]


def new_password() -> str:
    return secrets.token_urlsafe(15)


def hash_password(password: str) -> str:
    return _password_hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _password_hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def load_pepper(settings: Settings) -> bytes:
    """AIRLOCK_SECRET_KEY (or secret_key in the config); otherwise a key kept in the data folder.

    Several replicas must share one key, so they set it explicitly; a single process (the demo) is served
    by a key created once with owner-only permissions.
    """
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode("utf-8")
    path = Path(settings.data_dir) / SECRET_FILE_NAME
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    private_folder(path.parent)
    key = secrets.token_urlsafe(48).encode("ascii")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key
