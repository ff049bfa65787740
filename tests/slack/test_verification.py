"""The signature check on the raw body: Slack's own scheme, a five-minute window, nothing else accepted."""

from __future__ import annotations

import pytest

from service.slack.verification import RequestVerifier
from tests.slack.fake_slack import SIGNING_SECRET, FakeSlack

NOW = 1_795_514_430
BODY = b"payload=%7B%22type%22%3A%22block_actions%22%7D"


def verifier() -> RequestVerifier:
    return RequestVerifier(SIGNING_SECRET, now=lambda: float(NOW))


def headers(body: bytes = BODY, timestamp: int = NOW, secret: str = SIGNING_SECRET) -> dict[str, str]:
    signed = FakeSlack().signed(body, timestamp=timestamp, secret=secret)
    return {k.lower(): v for k, v in signed.items()}


def test_a_request_signed_by_slack_passes() -> None:
    assert verifier().is_from_slack(BODY, headers())


def test_slacks_documented_example_signature_passes() -> None:
    # The example on Slack's "Verifying requests from Slack" page: this secret, timestamp and body give this hash.
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&"
        b"channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"
        b"response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    check = RequestVerifier("8f742231b10e8888abcd99yyyzzz85a5", now=lambda: 1531420618.0)
    signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert check.is_from_slack(body, {"x-slack-request-timestamp": "1531420618", "x-slack-signature": signature})


@pytest.mark.parametrize(
    "changed",
    [
        {"secret": "another-secret"},
        {"body": BODY + b"x"},
        {"timestamp": NOW - 301},
        {"timestamp": NOW + 301},
    ],
    ids=["wrong secret", "body changed after signing", "replayed: too old", "from the future"],
)
def test_anything_else_fails(changed: dict[str, object]) -> None:
    signed_body = changed.get("body", BODY)
    assert isinstance(signed_body, bytes)
    sent = headers(
        signed_body,
        int(changed.get("timestamp", NOW)),  # type: ignore[call-overload]
        str(changed.get("secret", SIGNING_SECRET)),
    )
    assert not verifier().is_from_slack(BODY, sent)


def test_the_edges_of_the_window_and_malformed_headers() -> None:
    assert verifier().is_from_slack(BODY, headers(timestamp=NOW - 300))
    good = headers()
    assert not verifier().is_from_slack(BODY, {})
    assert not verifier().is_from_slack(BODY, {**good, "x-slack-request-timestamp": "soon"})
    assert not verifier().is_from_slack(BODY, {**good, "x-slack-signature": "v1=" + good["x-slack-signature"][3:]})
    assert not verifier().is_from_slack(b"\xff\xfe", headers(b"\xff\xfe"))


@pytest.mark.parametrize("timestamp", ["\u00b2", "\u0661\u0662", "1" * 13, "-1", "+1795514430", "1_795_514_430", " 1"])
def test_a_timestamp_that_is_not_plain_ascii_digits_is_refused_without_raising(timestamp: str) -> None:
    assert not verifier().is_from_slack(BODY, {**headers(), "x-slack-request-timestamp": timestamp})


@pytest.mark.parametrize("signature", ["v0=é" + "0" * 63, "v0=²", "v0=\udcff"])
def test_a_signature_that_is_not_ascii_fails_without_an_error(signature: str) -> None:
    # Starlette decodes header bytes as Latin-1, so a forged header can hold any such character.
    sent = {**headers(), "x-slack-signature": signature}
    assert not verifier().is_from_slack(BODY, sent)
