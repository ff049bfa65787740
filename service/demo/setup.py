"""Everything `airlock demo` prepares before it serves, kept idempotent so a second run reuses the first."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from sqlmodel import Session

from service.grants import service as grants
from service.policy import EstimatorRegistry
from service.policy_versions import service as policies
from service.security import TokenHasher
from service.users import service as users
from service.users.models import Role
from service.users.repository import UserRepository

CREDENTIALS_FILE = "demo-credentials.json"
ADMIN = "admin"
DEMO_USER = "demo"
DEMO_GRANT = "demo-agent"


@dataclass
class DemoCredentials:
    mcp_url: str
    grant_token: str
    admin_user: str
    admin_password: str
    admin_api_token: str


def demo_policy_source() -> str:
    return resources.files("service.demo").joinpath("policy.yaml").read_text("utf-8")


def prepare(
    session: Session, hasher: TokenHasher, registry: EstimatorRegistry, data_dir: Path, mcp_url: str
) -> DemoCredentials:
    path = data_dir / CREDENTIALS_FILE
    if path.exists() and UserRepository(session).by_username(ADMIN) is not None:
        saved = json.loads(path.read_text("utf-8"))
        saved["mcp_url"] = mcp_url
        credentials = DemoCredentials(**saved)
    else:
        admin = users.create_user(session, hasher, username=ADMIN, role=Role.ADMIN, actor="demo")
        # The agent's grant belongs to a separate user, so the admin may approve its calls (no self-approval).
        users.create_user(session, hasher, username=DEMO_USER, role=Role.VIEWER, actor="demo")
        grant = grants.create_grant(
            session, hasher, name=DEMO_GRANT, actor="demo", owner=DEMO_USER, labels={"env": "demo"}
        )
        credentials = DemoCredentials(mcp_url, grant.token, ADMIN, admin.password, admin.api_token)
    if policies.current(session) is None:
        policies.apply(session, demo_policy_source(), registry, origin="file", actor="demo", comment="demo policy")
    write_credentials(path, credentials)
    return credentials


def write_credentials(path: Path, credentials: DemoCredentials) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(credentials), handle, indent=2)
        handle.write("\n")
