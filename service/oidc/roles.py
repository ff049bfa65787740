"""Which role a person's groups give them: pure, so the rule is tested without a provider."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from service.oidc.config import RoleName
from service.users.models import Role

_RANK: tuple[tuple[Role, RoleName], ...] = ((Role.ADMIN, "admin"), (Role.APPROVER, "approver"), (Role.VIEWER, "viewer"))


def role_from_groups(
    groups: Iterable[str], mapping: Mapping[RoleName, Sequence[str]], default: RoleName | None
) -> Role | None:
    """The highest role any of the groups is mapped to; else the default role; None means refused."""
    held = set(groups)
    for role, name in _RANK:
        if held & set(mapping.get(name, ())):
            return role
    return Role(default) if default is not None else None
