"""The end of a sign-in through a provider, in one place: the provider's answer checked against the attempt the
browser started, the code exchanged, the ID token verified, and the person signed in as their linked user."""

from __future__ import annotations

from collections.abc import Mapping

import anyio

from service.db.engine import unit_of_work
from service.errors import InvalidInput, NotAuthenticated
from service.oidc import service as linking
from service.oidc.client import ProviderClient, SignInAttempt
from service.runtime import Runtime
from service.security import same_secret
from service.users.models import User


async def finish(
    runtime: Runtime,
    client: ProviderClient,
    attempt: SignInAttempt | None,
    answer: Mapping[str, str],
    redirect_uri: str,
) -> User:
    """`answer`: the query the provider sent the browser back with (code and state, or error)."""
    if attempt is None or attempt.provider != client.name:
        raise NotAuthenticated("this sign-in expired or was started in another browser; start it again")
    # The state is checked before anything else is believed: an answer to another sign-in is not this one's.
    if not same_secret(answer.get("state") or "", attempt.state):
        raise NotAuthenticated("this answer from the identity provider is not for this sign-in (state mismatch)")
    if answer.get("error"):
        detail = answer.get("error_description") or answer["error"]
        raise NotAuthenticated(f"{client.name} did not sign you in: {detail[:200]}")
    code = answer.get("code")
    if not code:
        raise InvalidInput(f"{client.name} sent you back without a sign-in code")
    id_token = await client.exchange_code(code, attempt, redirect_uri)
    identity = await client.verified_identity(id_token, attempt)

    def link() -> User:
        with unit_of_work(runtime.engine) as session:
            return linking.sign_in(session, runtime.hasher, client.name, client.settings, identity)

    return await anyio.to_thread.run_sync(link)
