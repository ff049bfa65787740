"""OAuth benchmark: one Airlock with OAuth on, the same echo call made with a static grant token and with an OAuth
access token for the same grant, rounds interleaved. Prints each one's CPU per call (Airlock's process alone), p50
and p99, and OAuth/static.

`python -m bench.oauth_bench [ROUNDS] [CALLS]`. The OAuth token is had the way an app has it: registration, the
authorize link, the person's sign-in and consent through the web forms, and the code exchange (docs/security.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2

from bench.gateway_bench import Target, free_port, median, percentile, sequential, start_airlock, wait_http

REDIRECT_URI = "http://127.0.0.1:9/callback"
PERSON = "ana"


def _airlock(*args: str) -> str:
    return subprocess.run(
        [str(Path(sys.executable).parent / "airlock"), *args], capture_output=True, text=True, check=True
    ).stdout


def _field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    if found is None:
        raise RuntimeError(f"the page has no {name} field")
    return found.group(1).replace("&amp;", "&")


async def oauth_token(base: str, password: str, grant: str) -> str:
    """An access token for `grant`, through registration, authorize, sign-in, consent and the code exchange."""
    async with httpx2.AsyncClient(base_url=base, timeout=30) as web:
        registered = await web.post(
            "/register",
            json={
                "client_name": "bench",
                "redirect_uris": [REDIRECT_URI],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            },
        )
        client_id = registered.json()["client_id"]
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        authorize = await web.get(
            "/authorize",
            params={
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": REDIRECT_URI,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "state": "bench",
                "resource": base + "/mcp",
            },
        )
        consent_path = urlsplit(authorize.headers["location"]).path
        sign_in = await web.get("/login", params={"next": consent_path})
        await web.post(
            "/login",
            data={
                "username": PERSON,
                "password": password,
                "csrf_token": _field(sign_in.text, "csrf_token"),
                "next": consent_path,
            },
        )
        page = await web.get(consent_path)
        answered = await web.post(
            consent_path, data={"csrf_token": _field(page.text, "csrf_token"), "decision": "approve", "grant": grant}
        )
        code = parse_qs(urlsplit(answered.headers["location"]).query)["code"][0]
        tokens = await web.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "client_id": client_id,
                "code": code,
                "code_verifier": verifier,
                "redirect_uri": REDIRECT_URI,
                "resource": base + "/mcp",
            },
        )
        return str(tokens.json()["access_token"])


async def run(rounds: int, calls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir, port = Path(tmp), free_port()
        base = f"http://127.0.0.1:{port}"
        process, static_token = start_airlock(workdir, port, extra={"oauth": {"issuer": base}})
        try:
            wait_http(base + "/readyz")
            config = str(workdir / "airlock.yaml")
            person = json.loads(_airlock("users", "create", PERSON, "--role", "approver", "--json", "--config", config))
            _airlock("grants", "create", "bench-oauth", "--owner", PERSON, "--config", config)
            access_token = await oauth_token(base, person["password"], "bench-oauth")
            targets = [
                Target("static grant token", base + "/mcp", static_token, process.pid),
                Target("OAuth access token", base + "/mcp", access_token, process.pid),
            ]
            figures: dict[str, dict[str, list[float]]] = {t.name: {"cpu": [], "p50": [], "p99": []} for t in targets}
            for _ in range(rounds):
                for target in targets:
                    latencies, cpu = await sequential(target, calls)
                    figures[target.name]["cpu"].append(cpu * 1e6)
                    figures[target.name]["p50"].append(median(latencies))
                    figures[target.name]["p99"].append(percentile(latencies, 0.99))
        finally:
            process.terminate()
            process.wait(10)
    print(f"\nOAuth: {rounds} interleaved rounds of {calls} sequential echo calls on one Airlock; medians")
    for name, f in figures.items():
        cpu, p50, p99 = median(f["cpu"]), median(f["p50"]), median(f["p99"])
        print(f"  {name:<20} CPU per call {cpu:6,.0f} µs   p50 {p50:5.2f} ms   p99 {p99:5.2f} ms")
    static, oauth = (figures[t.name]["cpu"] for t in targets)
    ratio = median([o / s for s, o in zip(static, oauth, strict=True)])
    print(
        f"  OAuth/static CPU per call, median of the rounds' ratios: {ratio:.3f} ({ratio - 1:+.1%}; target within 5%)"
    )


def main(rounds: int = 7, calls: int = 1000) -> None:
    anyio.run(run, rounds, calls)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
