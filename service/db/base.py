"""The metadata every table registers on, with the naming convention applied before any table is defined."""

from __future__ import annotations

from sqlmodel import SQLModel

from service.db.types import apply_naming_convention

apply_naming_convention(SQLModel.metadata)


def all_models() -> None:
    """Import every table module so that the metadata is complete (Alembic and tests call this)."""
    import service.approvals.models
    import service.audit.models
    import service.grants.models
    import service.policy_versions.models
    import service.slack.models
    import service.users.models  # noqa: F401
