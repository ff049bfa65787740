"""people leave: users can be deactivated (existing `disabled_at`) and deleted (`deleted_at`, the row stays as a
tombstone); a grant is suspended while its owner is deactivated; a grant's owner can no longer be removed from under it

Revision ID: 0010
Revises: 0009

The owner's foreign key moves from SET NULL to RESTRICT: a grant never loses its owner silently.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OWNER_FK = "fk_grants_owner_id_users"


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("grants") as batch:
        batch.add_column(sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))
        batch.drop_constraint(_OWNER_FK, type_="foreignkey")
        batch.create_foreign_key(_OWNER_FK, "users", ["owner_id"], ["id"], ondelete="RESTRICT")


def downgrade() -> None:
    with op.batch_alter_table("grants") as batch:
        batch.drop_constraint(_OWNER_FK, type_="foreignkey")
        batch.create_foreign_key(_OWNER_FK, "users", ["owner_id"], ["id"], ondelete="SET NULL")
        batch.drop_column("suspended_at")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("deleted_at")
