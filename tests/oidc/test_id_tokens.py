"""The ID token check (service/oidc/id_tokens.py): each claim that must hold, and tokens forged against a real
provider's published keys."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import anyio
import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

from service.errors import NotAuthenticated, Unavailable
from service.oidc.client import ProviderClient, SignInAttempt
from service.oidc.config import OIDCProviderSettings
from service.oidc.id_tokens import allowed_algorithms, verify_id_token
from tests.oidc.provider import CLIENT_ID, CLIENT_SECRET, LoopbackProvider

ISSUER = "https://idp.example.com"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
JWKS = KeySet([KEY]).as_dict(private=False)
NOW = 1_800_000_000.0


def claims(**changes: Any) -> dict[str, Any]:
    base = {"iss": ISSUER, "aud": "airlock", "sub": "s1", "iat": int(NOW), "exp": int(NOW) + 300, "nonce": "n-1"}
    return {k: v for k, v in (base | changes).items() if v is not None}


def signed(payload: dict[str, Any], key: Any = KEY, alg: str = "RS256", kid: str = "k1") -> str:
    return jwt.encode({"alg": alg, "kid": kid}, payload, key)


def check(token: str, nonce: str = "n-1") -> dict[str, Any]:
    return verify_id_token(
        token, jwks=JWKS, algorithms=["RS256"], issuer=ISSUER, client_id="airlock", nonce=nonce, now=lambda: NOW
    )


def unsigned(payload: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'kid': 'k1'})}.{part(payload)}."


def test_a_good_token_passes() -> None:
    assert check(signed(claims()))["sub"] == "s1"


@pytest.mark.parametrize(
    ("token", "why"),
    [
        (signed(claims(iss="https://evil.example.com")), "iss"),
        (signed(claims(aud="someone-else")), "aud"),
        (signed(claims(aud=["airlock", "other"])), "azp"),
        (signed(claims(azp="other")), "azp"),
        (signed(claims(aud=["airlock", "other"], azp="other")), "azp"),
        (signed(claims(exp=int(NOW) - 120)), "expired"),
        (signed(claims(exp=None)), "exp"),
        (signed(claims(nonce="n-other")), "nonce"),
        (signed(claims(nonce=None)), "nonce"),
        (unsigned(claims()), "signature"),
        (signed(claims(), key=OctKey.import_key(b"airlock-client-secret-0123456789"), alg="HS256"), "signature"),
        (signed(claims(), key=RSAKey.generate_key(2048)), "signature"),
        ("not.a.token", "signature"),
    ],
)
def test_a_bad_token_is_refused(token: str, why: str) -> None:
    with pytest.raises(NotAuthenticated, match=why):
        check(token)


def test_an_azp_naming_this_client_passes_with_one_audience_or_several() -> None:
    assert check(signed(claims(azp="airlock")))["azp"] == "airlock"
    assert check(signed(claims(aud=["airlock", "other"], azp="airlock")))["sub"] == "s1"


def test_an_issuer_ending_in_a_slash_is_compared_exactly() -> None:
    """Auth0's issuer ends in "/": its discovery document lives at <issuer without the slash>/.well-known/... and
    names the issuer with the slash (OpenID Connect Discovery 1.0, sections 4 and 4.3)."""
    issuer = "https://corp.eu.auth0.com/"
    asked: list[str] = []

    def provider(request: httpx2.Request) -> httpx2.Response:
        asked.append(str(request.url))
        endpoints = {k: f"{issuer}{k}" for k in ("authorization_endpoint", "token_endpoint", "jwks_uri")}
        return httpx2.Response(200, json={"issuer": issuer} | endpoints)

    def discovered(configured: str) -> str:
        settings = OIDCProviderSettings(issuer=configured, client_id="airlock", client_secret="secret")
        client = ProviderClient("auth0", settings, transport=httpx2.MockTransport(provider))
        return anyio.run(client.discovery).token_endpoint

    assert discovered(issuer) == "https://corp.eu.auth0.com/token_endpoint"
    assert asked == ["https://corp.eu.auth0.com/.well-known/openid-configuration"]
    with pytest.raises(Unavailable, match="names another issuer"):
        discovered("https://corp.eu.auth0.com")  # not the same string: not the same issuer


def test_none_and_symmetric_algorithms_are_never_allowed() -> None:
    assert allowed_algorithms(["none", "HS256", "ES256"]) == ["ES256"]
    assert allowed_algorithms(None) == ["RS256"]
    with pytest.raises(NotAuthenticated):
        allowed_algorithms(["none"])


@pytest.mark.e2e
def test_a_token_forged_under_a_real_providers_key_id_is_refused(corp: LoopbackProvider) -> None:
    """Discovery and the JWKS come from the real provider; the forger names its key but signs with their own."""
    corp.setup(["http://127.0.0.1:9/login/oidc/corp/callback"], {})
    settings = OIDCProviderSettings.model_validate(corp.settings())
    client = ProviderClient("corp", settings)
    attempt = SignInAttempt.start("corp", "/")

    async def forge_and_check() -> None:
        discovery = await client.discovery()
        assert "none" not in discovery.algorithms
        async with httpx2.AsyncClient() as http:  # the public JWKS, as anyone reads it
            published = (await http.get(discovery.jwks_uri)).json()
        kid = published["keys"][0]["kid"]
        payload = {"iss": corp.issuer, "aud": CLIENT_ID, "sub": "root", "iat": int(time.time())}
        payload |= {"exp": int(time.time()) + 300, "nonce": attempt.nonce}
        for token in (
            signed(payload, key=RSAKey.generate_key(2048), kid=kid),
            signed(payload, key=OctKey.import_key(CLIENT_SECRET.encode()), alg="HS256", kid=kid),
            unsigned(payload),
        ):
            with pytest.raises(NotAuthenticated):
                await client.verified_identity(token, attempt)

    anyio.run(forge_and_check)
