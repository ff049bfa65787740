"""oidc links: a person at an identity provider (issuer, subject) is linked to one Airlock user

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oidc_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("issuer", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_sign_in_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_oidc_links_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oidc_links")),
        sa.UniqueConstraint("issuer", "subject", name=op.f("uq_oidc_links_issuer")),
    )
    op.create_index(op.f("ix_oidc_links_user_id"), "oidc_links", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_oidc_links_user_id"), table_name="oidc_links")
    op.drop_table("oidc_links")
