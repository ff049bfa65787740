"""Points in time as people type them (history filters, `airlock audit export --since`)."""

from __future__ import annotations

from datetime import UTC, datetime

from service.errors import InvalidInput


def parse_instant(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 date, or date and time, in UTC (a time without a zone is UTC); None when empty. `name` says
    which field was wrong. A time whose UTC falls outside what a datetime holds (0001-01-01T00:00+14:00) is refused
    here, not later in a comparison or a database driver."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{name}: {value!r} is not an ISO date or time such as 2026-11-24 or 2026-11-24T09:00Z"
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{name}: {value!r} is outside the years 1 to 9999 in UTC") from None
