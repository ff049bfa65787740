"""The `oidc` section of the config: named identity providers, and whether local passwords still sign in."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator, model_validator

RoleName = Literal["admin", "approver", "viewer"]
_PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")


def public_or_loopback_url(value: str, what: str) -> str:
    """https, or http on loopback only (the tests' provider); no query or fragment. A trailing "/" is kept: an
    issuer is compared exactly as its provider spells it (Auth0's ends in "/"; docs/sign-in.md, "Configuring
    providers")."""
    value = value.strip()
    parts = urlsplit(value)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValueError(f"{what} must be an https URL (http only on localhost)")
    if parts.query or parts.fragment or not parts.netloc:
        raise ValueError(f"{what} is a URL without query or fragment")
    return value


class OIDCProviderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    issuer: str
    """Exactly the `issuer` of the provider's discovery document (`<issuer>/.well-known/openid-configuration`)."""
    client_id: str
    client_secret: SecretStr
    display_name: str | None = None
    """The sign-in button's words ("Sign in with <display_name>"); the provider's name when not set."""
    scopes: list[str] = ["openid", "email", "profile"]
    groups_claim: str = "groups"
    """The ID token claim listing the person's groups (a list of strings)."""
    roles: dict[RoleName, list[str]] = {}
    """Which groups give which role; in groups of several roles, one gets the highest (admin > approver > viewer)."""
    default_role: RoleName | None = "viewer"
    """The role of a person in none of the groups above; null refuses them."""
    match_verified_email: bool = False
    """At a person's first sign-in, link them to the existing user with their e-mail, when the ID token says the
    provider verified it. Off, or unverified, such a sign-in is refused (docs/sign-in.md, "Linking")."""
    create_users: bool = False
    """At a person's first sign-in with no user to link, create one; off, they are refused. Off by default: on, with
    neither `allowed_domains` nor a null `default_role`, anyone with an account at the provider gets in."""
    allowed_domains: list[str] = []
    """When not empty, only people of these domains sign in: the ID token's `hd` claim when it has one, else the
    domain of its verified e-mail (docs/sign-in.md, "Allowed domains")."""

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        return public_or_loopback_url(value, "issuer")

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("client_id is empty")
        return value.strip()

    @field_validator("client_secret")
    @classmethod
    def _client_secret(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("client_secret is empty")
        return value

    @field_validator("allowed_domains")
    @classmethod
    def _allowed_domains(cls, value: list[str]) -> list[str]:
        domains = [domain.strip().lower() for domain in value]
        for domain in domains:
            if not domain or not domain.isascii() or "@" in domain or not _DOMAIN.match(domain):
                raise ValueError(f"{domain!r} is not a domain name (ASCII; IDNs in their xn-- form)")
        return domains

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        if "openid" not in value:
            raise ValueError("scopes must include openid")
        return value


class OIDCSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    providers: dict[str, OIDCProviderSettings] = {}
    passwords: bool = True
    """Local passwords sign in to the web UI; false hides the form and refuses POST /login (docs/sign-in.md, "Break
    glass", says how an admin still gets in)."""

    @field_validator("providers")
    @classmethod
    def _names(cls, value: dict[str, OIDCProviderSettings]) -> dict[str, OIDCProviderSettings]:
        issuers: dict[str, str] = {}
        for name, provider in value.items():
            if not _PROVIDER_NAME.match(name):
                raise ValueError(f"provider name {name!r} may use lower-case letters, digits, - and _ only")
            if provider.issuer in issuers:
                raise ValueError(f"providers {issuers[provider.issuer]!r} and {name!r} have the same issuer")
            issuers[provider.issuer] = name
        return value

    @model_validator(mode="after")
    def _someone_can_sign_in(self) -> OIDCSettings:
        if not self.passwords and not self.providers:
            raise ValueError("passwords: false needs at least one provider, or nobody can sign in to the web UI")
        return self
