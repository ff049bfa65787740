"""The check of an ID token (OpenID Connect Core 3.1.3.7): signed by a key of the provider's JWKS with an asymmetric
algorithm the provider announces, for this client, from this issuer, not expired, and carrying this sign-in's nonce.
Pure: the keys, the announced algorithms and the clock come in."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from service.errors import NotAuthenticated
from service.security import same_secret

# Never "none", and never HS*: those would be keyed by the client secret, which is not the provider's signature.
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
CLOCK_SKEW_SECONDS = 60


class UnknownSigningKey(NotAuthenticated):
    """The token names a key the JWKS in hand does not hold: worth fetching the JWKS again (a rotated key)."""


def allowed_algorithms(announced: Iterable[str] | None) -> list[str]:
    """The provider's announced ID token algorithms that Airlock accepts; RS256 when it announces none, as every
    provider must support it (OpenID Connect Discovery 1.0, section 3)."""
    chosen = [alg for alg in (announced or ["RS256"]) if alg in ASYMMETRIC_ALGORITHMS]
    if not chosen:
        raise NotAuthenticated("the identity provider signs ID tokens with no algorithm Airlock accepts")
    return chosen


def verify_id_token(
    id_token: str,
    *,
    jwks: Mapping[str, Any],
    algorithms: list[str],
    issuer: str,
    client_id: str,
    nonce: str,
    now: Callable[[], float],
) -> dict[str, Any]:
    """The token's claims, or NotAuthenticated saying which check failed."""
    try:
        keys = KeySet.import_key_set(dict(jwks))  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise NotAuthenticated(f"the identity provider's keys (JWKS) are unusable: {exc}") from None
    try:
        token = jwt.decode(id_token, keys, algorithms=algorithms)
    except InvalidKeyIdError:
        raise UnknownSigningKey("the ID token is signed by a key the identity provider does not list") from None
    except (JoseError, ValueError, TypeError) as exc:
        raise NotAuthenticated(f"the ID token's signature does not verify ({getattr(exc, 'error', exc)})") from None
    claims = dict(token.claims)
    registry = jwt.JWTClaimsRegistry(
        now=lambda: int(now()),
        leeway=CLOCK_SKEW_SECONDS,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise NotAuthenticated(f"the ID token was refused ({exc.description or exc.error})") from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    # OpenID Connect Core 3.1.3.7 asks for azp with several audiences; an azp naming another client is refused even
    # with one audience, as that token was issued to that other client.
    if (len(audiences) > 1 or "azp" in claims) and claims.get("azp") != client_id:
        raise NotAuthenticated("the ID token names another client as its authorized party (azp)")
    if not isinstance(claims.get("nonce"), str) or not same_secret(claims["nonce"], nonce):
        raise NotAuthenticated("the ID token does not carry this sign-in's nonce (a replayed or foreign token)")
    return claims
