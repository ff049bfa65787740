"""approvals: votes, standing approvals, request columns

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 07:14:19.400847
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "standing_approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=False),
        sa.Column("tool", sa.String(length=255), nullable=False),
        sa.Column("arguments_digest", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["grant_id"], ["grants.id"], name=op.f("fk_standing_approvals_grant_id_grants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_standing_approvals")),
    )
    with op.batch_alter_table("standing_approvals", schema=None) as batch_op:
        batch_op.create_index("ix_standing_approvals_grant_tool", ["grant_id", "tool"], unique=False)

    op.create_table(
        "approval_votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("approver", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["tool_call_requests.id"],
            name=op.f("fk_approval_votes_request_id_tool_call_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_votes")),
        sa.UniqueConstraint("request_id", "approver", name="uq_approval_votes_request_id_approver"),
    )
    with op.batch_alter_table("tool_call_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upstream_tool", sa.String(length=255), server_default="", nullable=False))
        batch_op.add_column(sa.Column("reminders_sent", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("tool_call_requests", schema=None) as batch_op:
        batch_op.drop_column("reminders_sent")
        batch_op.drop_column("upstream_tool")

    op.drop_table("approval_votes")
    with op.batch_alter_table("standing_approvals", schema=None) as batch_op:
        batch_op.drop_index("ix_standing_approvals_grant_tool")

    op.drop_table("standing_approvals")
