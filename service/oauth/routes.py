"""The authorization server's and the protected resource's HTTP routes, built from the MCP SDK's handlers: AS
metadata (RFC 8414), authorize, token, registration (RFC 7591) and revocation (RFC 7009), and Protected Resource
Metadata (RFC 9728) for /mcp and for every /mcp/{name}."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from functools import partial

import anyio
from mcp.server.auth.handlers.authorize import AuthorizationHandler
from mcp.server.auth.handlers.metadata import MetadataHandler, ProtectedResourceMetadataHandler
from mcp.server.auth.handlers.register import RegistrationHandler
from mcp.server.auth.handlers.token import TokenHandler
from mcp.server.auth.middleware.client_auth import AuthenticationError, ClientAuthenticator
from mcp.server.auth.provider import construct_redirect_uri
from mcp.server.auth.routes import (
    AUTHORIZATION_PATH,
    REGISTRATION_PATH,
    REVOCATION_PATH,
    TOKEN_PATH,
    build_metadata,
    cors_middleware,
    create_auth_routes,
)
from mcp.server.auth.settings import ClientRegistrationOptions, RevocationOptions
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, RequestBodyLimitMiddleware
from mcp.shared.auth import OAuthMetadata, ProtectedResourceMetadata
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from pydantic import AnyHttpUrl
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, request_response
from starlette.types import ASGIApp, Message

from service.edge import read_at_most
from service.errors import TooLarge, TooManyAttempts, Unavailable
from service.oauth.client_auth import HashedSecretAuthenticator
from service.oauth.provider import CONSENT_PATH, AirlockOAuthProvider
from service.oauth.resources import (
    MCP_RESOURCE_PATH,
    PROTECTED_RESOURCE_WELL_KNOWN,
    endpoint_resource,
    is_upstream_name,
)

AS_METADATA_PATH = "/.well-known/oauth-authorization-server"
RESOURCE_NAME = "Airlock"


def authorization_server_metadata(provider: AirlockOAuthProvider) -> OAuthMetadata:
    built = build_metadata(
        AnyHttpUrl(provider.issuer),
        None,
        ClientRegistrationOptions(enabled=True),
        RevocationOptions(enabled=True),
    )
    # Validated again from text: the issuer must read exactly as configured, without the trailing slash a parsed
    # URL gains, because clients compare it to `iss` as plain strings (RFC 9207 §2.4).
    return OAuthMetadata.model_validate(
        {
            **built.model_dump(mode="json", exclude_none=True),
            "issuer": provider.issuer,
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
            # Only with a fetcher in place: a client told so would otherwise present a URL nobody resolves.
            "client_id_metadata_document_supported": provider.resolver is not None,
        }
    )


def resource_metadata(issuer: str, upstream: str | None) -> ProtectedResourceMetadata:
    return ProtectedResourceMetadata.model_validate(
        {
            "resource": endpoint_resource(issuer, upstream),
            "authorization_servers": [issuer],
            "resource_name": RESOURCE_NAME if upstream is None else f"{RESOURCE_NAME}: {upstream}",
        }
    )


async def revoke(provider: AirlockOAuthProvider, clients: ClientAuthenticator, request: Request) -> Response:
    """RFC 7009 revocation. The SDK's handler requires a `client_secret` field even of a public client, which sends
    none (RFC 7009 §2.1), so this one reads the form itself; the rest is the SDK's: client authentication, and
    revoking only a token of the client that asks."""
    try:
        client = await clients.authenticate_request(request)
    except AuthenticationError as exc:
        return JSONResponse({"error": "invalid_client", "error_description": exc.message}, status_code=401)
    form = await request.form()
    token = form.get("token")
    if not isinstance(token, str) or not token:
        return JSONResponse({"error": "invalid_request", "error_description": "token is required"}, status_code=400)
    found = await provider.load_access_token(token) or await provider.load_refresh_token(client, token)
    if found is not None and found.client_id == client.client_id:
        await provider.revoke_token(found)
    # An unknown token is answered alike (RFC 7009 §2.2): nothing is told about other clients' tokens.
    return Response(status_code=200, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


async def register(provider: AirlockOAuthProvider, handler: RegistrationHandler, request: Request) -> Response:
    """RFC 7591 registration, bounded (service/oauth/registration.py): so many per client address in a window (429
    with Retry-After), and a body of at most `oauth.registration_max_bytes` (413), refused before it is all read.
    Within both, the SDK's handler checks and stores the client."""
    address = request.client.host if request.client else "unknown"
    max_bytes = provider.registrations.max_bytes
    too_large = f"client metadata is at most {max_bytes} bytes"
    try:
        await anyio.to_thread.run_sync(provider.registrations.admit, address)  # every attempt counts
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and (len(declared) > 12 or int(declared) > max_bytes):
            raise TooLarge(too_large)
        body = await read_at_most(request.stream(), max_bytes, too_large=too_large)
    except TooLarge as exc:
        return _oauth_error(413, "invalid_client_metadata", exc.message)
    except TooManyAttempts as exc:
        retry = {"Retry-After": str(math.ceil(exc.retry_after))}
        return _oauth_error(429, "too_many_requests", exc.message, retry)
    except Unavailable as exc:
        return _oauth_error(503, "temporarily_unavailable", exc.message)

    async def replay() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return await handler.handle(Request(request.scope, replay))


def _oauth_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> Response:
    body = {"error": error, "error_description": description}
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})


async def authorize(handler: AuthorizationHandler, issuer: str, request: Request) -> Response:
    """The SDK's authorize handler, with `iss` on every answer it sends to the client's redirect URI, errors included
    (RFC 9207 section 2). The way to the consent page is no such answer; the consent's own answer carries `iss`."""
    response = await handler.handle(request)
    location = response.headers.get("location")
    if location is not None and not location.startswith(f"{issuer}{CONSENT_PATH}/"):
        response.headers["location"] = construct_redirect_uri(location, iss=issuer)
    return response


def _served_like_the_sdk(handler: Callable[[Request], Awaitable[Response]], cors: list[str] | None) -> ASGIApp:
    """A handler wrapped as create_auth_routes wraps the SDK's own: the SDK's body limit, then CORS where allowed."""
    limited = RequestBodyLimitMiddleware(request_response(handler), DEFAULT_MAX_REQUEST_BODY_SIZE)
    if cors is None:
        return limited
    return CORSMiddleware(limited, allow_origins="*", allow_methods=cors, allow_headers=[MCP_PROTOCOL_VERSION_HEADER])


def oauth_routes(provider: AirlockOAuthProvider) -> list[BaseRoute]:
    issuer = provider.issuer
    clients = HashedSecretAuthenticator(provider)
    routes: list[BaseRoute] = []
    for route in create_auth_routes(
        provider,
        AnyHttpUrl(issuer),
        client_registration_options=ClientRegistrationOptions(enabled=True),
        revocation_options=RevocationOptions(enabled=True),
    ):
        if isinstance(route, Route) and route.path == AS_METADATA_PATH:
            handler = MetadataHandler(authorization_server_metadata(provider))
            endpoint = cors_middleware(handler.handle, ["GET", "OPTIONS"])
            routes.append(Route(AS_METADATA_PATH, endpoint, methods=["GET", "OPTIONS"]))
        elif isinstance(route, Route) and route.path == REVOCATION_PATH:
            endpoint = cors_middleware(partial(revoke, provider, clients), ["POST", "OPTIONS"])
            routes.append(Route(REVOCATION_PATH, endpoint, methods=["POST", "OPTIONS"]))
        elif isinstance(route, Route) and route.path == REGISTRATION_PATH:
            registration = RegistrationHandler(provider, options=ClientRegistrationOptions(enabled=True))
            endpoint = cors_middleware(partial(register, provider, registration), ["POST", "OPTIONS"])
            routes.append(Route(REGISTRATION_PATH, endpoint, methods=["POST", "OPTIONS"]))
        elif isinstance(route, Route) and route.path == TOKEN_PATH:
            endpoint = _served_like_the_sdk(TokenHandler(provider, clients).handle, ["POST", "OPTIONS"])
            routes.append(Route(TOKEN_PATH, endpoint, methods=["POST", "OPTIONS"]))
        elif isinstance(route, Route) and route.path == AUTHORIZATION_PATH:
            endpoint = _served_like_the_sdk(partial(authorize, AuthorizationHandler(provider), issuer), None)
            routes.append(Route(AUTHORIZATION_PATH, endpoint, methods=["GET", "POST"]))
        else:
            routes.append(route)
    aggregate = ProtectedResourceMetadataHandler(resource_metadata(issuer, None))
    prm_path = PROTECTED_RESOURCE_WELL_KNOWN + MCP_RESOURCE_PATH

    async def one_upstream(request: Request) -> Response:
        # Every well-formed name is answered alike, known or not: the metadata tells no upstream's existence.
        name = request.path_params["name"]
        if not is_upstream_name(name):
            return JSONResponse({"error": "not found"}, status_code=404)
        return await ProtectedResourceMetadataHandler(resource_metadata(issuer, name)).handle(request)

    routes.append(Route(prm_path, cors_middleware(aggregate.handle, ["GET", "OPTIONS"]), methods=["GET", "OPTIONS"]))
    routes.append(
        Route(prm_path + "/{name}", cors_middleware(one_upstream, ["GET", "OPTIONS"]), methods=["GET", "OPTIONS"])
    )
    return routes
