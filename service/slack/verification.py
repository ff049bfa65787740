"""Is this request from Slack? Checked on the raw body before anything is parsed.

Slack signs `v0:{timestamp}:{body}` with the app's signing secret (HMAC-SHA256). A timestamp more than five
minutes away from our clock is refused, so a captured request cannot be replayed later; the signatures are
compared in constant time.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping

from slack_sdk.signature import Clock, SignatureVerifier


class _InjectedClock(Clock):
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


class RequestVerifier:
    def __init__(self, signing_secret: str, now: Callable[[], float] = time.time) -> None:
        self._verifier = SignatureVerifier(signing_secret, clock=_InjectedClock(now))

    def is_from_slack(self, body: bytes, headers: Mapping[str, str]) -> bool:
        timestamp = headers.get("x-slack-request-timestamp")
        signature = headers.get("x-slack-signature")
        # ASCII digits only: the SDK calls int() on it, and str.isdigit() also passes "²", which int() refuses.
        if not timestamp or not signature or not re.fullmatch(r"[0-9]{1,12}", timestamp):
            return False
        if not signature.isascii():  # the SDK's hmac.compare_digest raises TypeError on other text (a 500)
            return False
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return self._verifier.is_valid(body=body, timestamp=timestamp, signature=signature)

    def sign(self, body: bytes, timestamp: int) -> str:
        """The signature Slack would send (for tests and tools that replay a payload by hand)."""
        signature = self._verifier.generate_signature(timestamp=str(timestamp), body=body)
        assert signature is not None
        return signature
