"""The metadata every table registers on, with the naming convention applied before any table is defined. Which
tables there are is service/models.py's to say, not the core's."""

from __future__ import annotations

from sqlmodel import SQLModel

from service.db.types import apply_naming_convention

apply_naming_convention(SQLModel.metadata)
