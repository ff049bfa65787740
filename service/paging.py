"""Keyset paging: the cursor a page hands out, and reading it back."""

from __future__ import annotations

import re

from service.errors import InvalidInput

# ASCII digits only (str.isdigit also takes "²"), and no more than a 64-bit row id holds: the databases refuse larger
# integers with an error of their own, which is no answer for a person who edited a URL.
_CURSOR = re.compile(r"[0-9]{1,18}")


def parse_cursor(cursor: str | None) -> int | None:
    """The row id or sequence number a page continues below; None for the first page."""
    if not cursor:
        return None
    if not _CURSOR.fullmatch(cursor):
        raise InvalidInput("cursor must be the next_cursor of a previous page")
    return int(cursor)
