"""web UI: indexes for the audit history's filtered, newest-first pages

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = {
    "ix_audit_events_tool_seq": ["tool", "seq"],
    "ix_audit_events_outcome_seq": ["outcome", "seq"],
    "ix_audit_events_grant_id_seq": ["grant_id", "seq"],
    "ix_audit_events_actor_seq": ["actor", "seq"],
}


def upgrade() -> None:
    for name, columns in _INDEXES.items():
        op.create_index(name, "audit_events", columns, unique=False)


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, table_name="audit_events")
