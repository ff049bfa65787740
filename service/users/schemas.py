from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from service.users.models import Role


class UserPublic(BaseModel):
    id: int
    username: str
    role: Role
    slack_user_id: str | None
    email: str | None
    created_at: datetime
    disabled: bool


class UserCreated(BaseModel):
    """Shown once: the generated password and API token are not stored in the clear anywhere."""

    username: str
    role: Role
    password: str
    api_token: str
