"""Client authentication at /token and /revoke for clients whose secret Airlock keeps only as an HMAC
(docs/security.md#oauth-for-agents).

The SDK's `ClientAuthenticator` reads the secret from where the client's method says (the form, or HTTP Basic),
checks Basic's client_id and the secret's expiry, and compares the secret with the client's stored `client_secret`.
Airlock stores no secret to compare with, so for one request the SDK is shown each client with, as its
`client_secret`, the presented secret whose HMAC is the stored one, or else a value nobody was sent. Everything else
stays the SDK's."""

from __future__ import annotations

import base64
import binascii
from typing import cast
from urllib.parse import unquote

from mcp.server.auth.middleware.client_auth import ClientAuthenticator
from mcp.shared.auth import OAuthClientInformationFull
from starlette.requests import Request

from service.oauth.provider import AirlockOAuthProvider
from service.security import new_token

_UNMATCHED_KIND = "unmatched"


class HashedSecretAuthenticator(ClientAuthenticator):
    def __init__(self, provider: AirlockOAuthProvider) -> None:
        super().__init__(provider)
        self.clients = provider

    async def authenticate_request(self, request: Request) -> OAuthClientInformationFull:
        form = await request.form()
        posted = form.get("client_secret")
        presented = [secret for secret in (_basic_password(request), posted) if isinstance(secret, str) and secret]
        view = _ClientsSeenByOneRequest(self.clients, presented)
        # The SDK's authenticator only ever calls get_client on its provider.
        return await ClientAuthenticator(cast(AirlockOAuthProvider, view)).authenticate_request(request)


class _ClientsSeenByOneRequest:
    def __init__(self, clients: AirlockOAuthProvider, presented: list[str]) -> None:
        self.clients = clients
        self.presented = presented

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        client = await self.clients.get_client(client_id)
        if client is None or client.token_endpoint_auth_method in (None, "none"):
            return client
        matching = await self.clients.matching_client_secret(client_id, self.presented)
        return client.model_copy(update={"client_secret": matching or new_token(_UNMATCHED_KIND)})


def _basic_password(request: Request) -> str | None:
    """The password of an HTTP Basic header (RFC 6749 section 2.3.1), or None; the SDK refuses a malformed one."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:]).decode("utf-8")
    except (ValueError, binascii.Error):
        return None
    _client_id, colon, password = decoded.partition(":")
    return unquote(password) if colon else None
