"""bound votes: every vote carries the arguments digest it approved and whether its approver asked to remember the
call; a request keeps its original cost beside an edit's

Revision ID: 0008
Revises: 0007

Votes cast before this migration carry an empty digest, which matches no arguments: a pending request's quorum is then
gathered again, on the digest that will run (fail closed).
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("approval_votes") as batch:
        batch.add_column(sa.Column("arguments_digest", sa.String(length=64), nullable=False, server_default=""))
        batch.add_column(sa.Column("remember_scope", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("remember_seconds", sa.Integer(), nullable=True))
    with op.batch_alter_table("tool_call_requests") as batch:
        batch.add_column(sa.Column("original_cost_micros", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tool_call_requests") as batch:
        batch.drop_column("original_cost_micros")
    with op.batch_alter_table("approval_votes") as batch:
        batch.drop_column("remember_seconds")
        batch.drop_column("remember_scope")
        batch.drop_column("arguments_digest")
