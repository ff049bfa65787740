"""request reminders: when the next one is due, so an idle sweep reads one index instead of every pending request

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 09:14:15.955573
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tool_call_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_reminder_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_tool_call_requests_status_next_reminder", ["status", "next_reminder_at"], unique=False
        )
    # Requests already waiting are looked at by the next sweep, which sets their real next reminder.
    op.execute("UPDATE tool_call_requests SET next_reminder_at = created_at WHERE status = 'pending'")


def downgrade() -> None:
    with op.batch_alter_table("tool_call_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_tool_call_requests_status_next_reminder")
        batch_op.drop_column("next_reminder_at")
