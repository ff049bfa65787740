"""oauth: clients, authorizations (with their one-time codes), access and refresh tokens, and consents

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=2048), nullable=False),
        sa.Column("client_metadata", sa.JSON(), nullable=False),
        sa.Column("registered_by", sa.String(length=32), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_clients")),
        sa.UniqueConstraint("client_id", name=op.f("uq_oauth_clients_client_id")),
    )
    op.create_table(
        "oauth_authorizations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("client_row_id", sa.Integer(), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("redirect_uri_explicit", sa.Boolean(), nullable=False),
        sa.Column("code_challenge", sa.String(length=128), nullable=False),
        sa.Column("state", sa.Text(), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("grant_id", sa.Integer(), nullable=True),
        sa.Column("code_hash", sa.String(length=64), nullable=True),
        sa.Column("code_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("code_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_row_id"],
            ["oauth_clients.id"],
            name=op.f("fk_oauth_authorizations_client_row_id_oauth_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["grant_id"], ["grants.id"], name=op.f("fk_oauth_authorizations_grant_id_grants"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_oauth_authorizations_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_authorizations")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_oauth_authorizations_code_hash")),
        sa.UniqueConstraint("request_hash", name=op.f("uq_oauth_authorizations_request_hash")),
    )
    with op.batch_alter_table("oauth_authorizations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_oauth_authorizations_client_row_id"), ["client_row_id"], unique=False)

    op.create_table(
        "oauth_consents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("client_row_id", sa.Integer(), nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_row_id"],
            ["oauth_clients.id"],
            name=op.f("fk_oauth_consents_client_row_id_oauth_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["grant_id"], ["grants.id"], name=op.f("fk_oauth_consents_grant_id_grants"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_oauth_consents_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_consents")),
        sa.UniqueConstraint("user_id", "client_row_id", name=op.f("uq_oauth_consents_user_id")),
    )
    with op.batch_alter_table("oauth_consents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_oauth_consents_client_row_id"), ["client_row_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_oauth_consents_grant_id"), ["grant_id"], unique=False)

    op.create_table(
        "oauth_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("authorization_id", sa.Integer(), nullable=False),
        sa.Column("client_row_id", sa.Integer(), nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["authorization_id"],
            ["oauth_authorizations.id"],
            name=op.f("fk_oauth_tokens_authorization_id_oauth_authorizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_row_id"],
            ["oauth_clients.id"],
            name=op.f("fk_oauth_tokens_client_row_id_oauth_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["grant_id"], ["grants.id"], name=op.f("fk_oauth_tokens_grant_id_grants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_oauth_tokens_token_hash")),
    )
    with op.batch_alter_table("oauth_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_oauth_tokens_authorization_id"), ["authorization_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_oauth_tokens_client_row_id"), ["client_row_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_oauth_tokens_grant_id"), ["grant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("oauth_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_tokens_grant_id"))
        batch_op.drop_index(batch_op.f("ix_oauth_tokens_client_row_id"))
        batch_op.drop_index(batch_op.f("ix_oauth_tokens_authorization_id"))

    op.drop_table("oauth_tokens")
    with op.batch_alter_table("oauth_consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_consents_grant_id"))
        batch_op.drop_index(batch_op.f("ix_oauth_consents_client_row_id"))

    op.drop_table("oauth_consents")
    with op.batch_alter_table("oauth_authorizations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_authorizations_client_row_id"))

    op.drop_table("oauth_authorizations")
    op.drop_table("oauth_clients")
