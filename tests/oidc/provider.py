"""A real OpenID provider on loopback (`oidc-provider` from npm, run by Node: tests/clients/node/oidc_provider.mjs),
and a person signing in through it over HTTP, following its forms as a browser would."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

NODE_DIR = Path(__file__).resolve().parents[1] / "clients" / "node"
CLIENT_ID = "airlock"
CLIENT_SECRET = "tests-only-client-secret-0123456789"


@dataclass
class LoopbackProvider:
    issuer: str

    def setup(self, redirect_uris: list[str], accounts: dict[str, dict[str, Any]]) -> None:
        """A fresh provider: this one client (Airlock) and these accounts, by subject."""
        body = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": redirect_uris}
        answer = httpx2.post(f"{self.issuer}/test/setup", json=body | {"accounts": accounts}, timeout=10)
        assert answer.status_code == 204, answer.text

    def set_accounts(self, accounts: dict[str, dict[str, Any]]) -> None:
        """New claims for the next sign-in (a person moved to another group)."""
        answer = httpx2.post(f"{self.issuer}/test/accounts", json=accounts, timeout=10)
        assert answer.status_code == 204, answer.text

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """This provider's entry under `oidc.providers` in Airlock's config."""
        return {
            "issuer": self.issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scopes": ["openid", "email", "profile", "groups"],
            "roles": {"admin": ["airlock-admins"], "approver": ["airlock-approvers"]},
        } | overrides


@contextmanager
def running_provider() -> Iterator[LoopbackProvider]:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "oidc-provider").exists():
        pytest.fail("node or oidc-provider is missing: `make install` installs tests/clients/node")
    # Its stderr goes to a file, not a pipe nobody reads (a full pipe would stall it).
    with (
        tempfile.TemporaryFile("w+") as errors,
        subprocess.Popen(
            [node, "oidc_provider.mjs"], cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=errors, text=True
        ) as process,
    ):
        try:
            assert process.stdout is not None
            first = process.stdout.readline()  # blocks until it listens, or returns "" when it died
            if not first:
                errors.seek(0)
                pytest.fail(f"the OpenID provider did not start: {errors.read()[-2000:]}")
            yield LoopbackProvider(json.loads(first)["issuer"])
        finally:
            process.terminate()
            process.wait(timeout=10)


def callback_of(base_url: str, name: str) -> str:
    return f"{base_url}/login/oidc/{name}/callback"


def sign_in_through(web: httpx2.Client, provider_name: str, subject: str, next_path: str = "/") -> httpx2.Response:
    """Press "Sign in with ..." on Airlock, type the subject at the provider, and follow every redirect back; the
    answer is Airlock's last page (the next page when signed in, the sign-in page with the reason when refused)."""
    at_provider = web.get(f"/login/oidc/{provider_name}", params={"next": next_path}, follow_redirects=True)
    assert at_provider.status_code == 200, at_provider.text
    action = re.search(r'<form method="post" action="([^"]+)"', at_provider.text)
    assert action is not None, at_provider.text
    return web.post(str(at_provider.url.join(action.group(1))), data={"login": subject}, follow_redirects=True)
