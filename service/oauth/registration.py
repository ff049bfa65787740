"""Bounds on Dynamic Client Registration (RFC 7591), which anyone who can reach Airlock may call: each registration
is a stored row, so a client could otherwise grow the table without end (docs/security.md#oauth-for-agents).

Registrations are counted per client address in a moving window, in the sign-in throttle's window
(service/users/throttle.py: this process's memory on the app's clock, or Redis shared by replicas), and the request
body is read only up to `oauth.registration_max_bytes`. The SDK's handler does the rest of the checking."""

from __future__ import annotations

import math
from datetime import timedelta

from limits import RateLimitItemPerSecond
from limits.errors import StorageError

from service.clock import SYSTEM_CLOCK, Clock
from service.config import OAuthConfig
from service.errors import TooManyAttempts, Unavailable
from service.users.throttle import CountWindow, count_window

NAMESPACE = "oauth-registration"


class RegistrationLimit:
    def __init__(self, window: CountWindow, *, per_address: int, window_length: timedelta, max_bytes: int) -> None:
        self._window = window
        self.max_bytes = max_bytes
        """The largest registration request read."""
        self._item = RateLimitItemPerSecond(
            per_address, max(1, math.ceil(window_length.total_seconds())), namespace=NAMESPACE
        )

    @classmethod
    def build(
        cls, config: OAuthConfig, *, redis_url: str | None, redis_prefix: str, clock: Clock = SYSTEM_CLOCK
    ) -> RegistrationLimit:
        return cls(
            count_window(redis_url, redis_prefix, clock),
            per_address=config.registrations_per_address,
            window_length=config.registration_window,
            max_bytes=config.registration_max_bytes,
        )

    def admit(self, address: str) -> None:
        """Count one registration from this address, or refuse it (TooManyAttempts) when the address has used up its
        window. Without its counts the limit cannot tell a flood from a client, so it fails closed (Unavailable)."""
        try:
            wait = self._window.wait(self._item, address)
            if wait is None:
                self._window.hit(self._item, address)
        except StorageError as exc:
            raise Unavailable(f"the registration limit's store is unavailable: {exc.storage_error}") from exc
        if wait is not None:
            minutes = max(1, math.ceil(wait / 60))
            raise TooManyAttempts(
                f"too many client registrations from this address; try again in {minutes} minute"
                + ("s" if minutes != 1 else ""),
                retry_after=max(1.0, wait),
            )

    def close(self) -> None:
        self._window.close()
