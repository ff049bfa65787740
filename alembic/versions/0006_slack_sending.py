"""slack: who is sending a card's post or image right now, so two replicas never post the same card twice

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("slack_cards") as table:
        table.add_column(sa.Column("sending_by", sa.String(length=32), nullable=True))
        table.add_column(sa.Column("sending_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("slack_cards") as table:
        table.drop_column("sending_until")
        table.drop_column("sending_by")
