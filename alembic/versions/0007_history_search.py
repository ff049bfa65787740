"""history search and web sessions: an index for the free-text search over the audit log's tool and reason, and a
session generation per user

Revision ID: 0007
Revises: 0006

The search: on SQLite, an FTS5 table with the trigram tokenizer, keyed by the event's seq and kept in step by
triggers. It holds no copy of the text (contentless): the history asks it only for the seqs that match. On PostgreSQL,
pg_trgm's GIN indexes, which `ILIKE '%...%'` uses as it is.

The sessions: web session cookies carry the user's session generation; raising it ends them all (sign-out, new role).
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Audit rows are never updated by Airlock, but a person may edit one by hand (the chain's verification exists to catch
# exactly that): the update trigger keeps the index true to the table whatever happens to it. A contentless FTS5 table
# deletes a row only when told its old text, which the triggers have.
_SQLITE_UP = (
    "CREATE VIRTUAL TABLE audit_search USING fts5(tool, reason, content='', tokenize='trigram')",
    "INSERT INTO audit_search (rowid, tool, reason) SELECT seq, tool, reason FROM audit_events",
    """CREATE TRIGGER audit_search_insert AFTER INSERT ON audit_events BEGIN
        INSERT INTO audit_search (rowid, tool, reason) VALUES (new.seq, new.tool, new.reason);
    END""",
    """CREATE TRIGGER audit_search_delete AFTER DELETE ON audit_events BEGIN
        INSERT INTO audit_search (audit_search, rowid, tool, reason) VALUES ('delete', old.seq, old.tool, old.reason);
    END""",
    """CREATE TRIGGER audit_search_update AFTER UPDATE OF seq, tool, reason ON audit_events BEGIN
        INSERT INTO audit_search (audit_search, rowid, tool, reason) VALUES ('delete', old.seq, old.tool, old.reason);
        INSERT INTO audit_search (rowid, tool, reason) VALUES (new.seq, new.tool, new.reason);
    END""",
)
_SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS audit_search_update",
    "DROP TRIGGER IF EXISTS audit_search_delete",
    "DROP TRIGGER IF EXISTS audit_search_insert",
    "DROP TABLE IF EXISTS audit_search",
)

# pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner may create it without being a superuser.
_POSTGRES_UP = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX ix_audit_events_tool_trgm ON audit_events USING gin (tool gin_trgm_ops)",
    "CREATE INDEX ix_audit_events_reason_trgm ON audit_events USING gin (reason gin_trgm_ops)",
)
# The extension stays: other schemas of the same database may use it, and it costs nothing unused.
_POSTGRES_DOWN = (
    "DROP INDEX IF EXISTS ix_audit_events_reason_trgm",
    "DROP INDEX IF EXISTS ix_audit_events_tool_trgm",
)


def upgrade() -> None:
    for statement in _SQLITE_UP if op.get_bind().dialect.name == "sqlite" else _POSTGRES_UP:
        op.execute(statement)
    op.add_column("users", sa.Column("session_generation", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_generation")
    for statement in _SQLITE_DOWN if op.get_bind().dialect.name == "sqlite" else _POSTGRES_DOWN:
        op.execute(statement)
