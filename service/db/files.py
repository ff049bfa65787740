"""Airlock's files on disk. The SQLite database holds every argument agents sent and every decision, and the data
folder holds the secret key: only their owner may read them. SQLite gives the database's WAL and shared-memory
files the permissions of the database file itself, so creating that file 0600 covers all three."""

from __future__ import annotations

import os
from pathlib import Path


def private_folder(path: Path) -> None:
    """Create the folder owner-only (0700). One that exists is left as its owner set it."""
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)


def private_sqlite_file(path: Path) -> None:
    """Create the database file 0600 (an empty file is an empty database), in an owner-only folder when that is
    new too, before SQLite opens it with the umask's looser default."""
    private_folder(path.parent)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
