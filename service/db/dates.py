"""Grouping timestamps by UTC day or hour in SQL, the same on SQLite (UTC text) and PostgreSQL (timestamptz)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlalchemy.orm import Session


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def utc_day(session: Session, column: Any) -> Any:
    """'YYYY-MM-DD' of a timestamp column."""
    if _dialect(session) == "sqlite":
        return func.strftime("%Y-%m-%d", column)
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")


def utc_hour(session: Session, column: Any) -> Any:
    """'YYYY-MM-DD HH:00' of a timestamp column."""
    if _dialect(session) == "sqlite":
        return func.strftime("%Y-%m-%d %H:00", column)
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24:00")
