"""The SQLite database holds every argument agents sent and every decision: only its owner may read it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sqlalchemy import text

from service.config import Settings
from service.runtime import Runtime


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_and_its_wal_and_shm_are_0600_in_a_0700_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "nested" / "airlock-data"
    previous = os.umask(0o022)  # the usual umask, which left them readable by everyone
    try:
        runtime = Runtime.build(Settings(data_dir=data, secret_key="k" * 40))
    finally:
        os.umask(previous)
    try:
        with runtime.engine.begin() as connection:  # a write: the WAL and its index exist while it is open
            connection.execute(text("CREATE TABLE IF NOT EXISTS probe (x INTEGER)"))
        assert mode(data) == 0o700
        files = {name: data / name for name in ("airlock.db", "airlock.db-wal", "airlock.db-shm")}
        assert all(path.exists() for path in files.values())
        assert {name: oct(mode(path)) for name, path in files.items()} == dict.fromkeys(files, oct(0o600))
    finally:
        runtime.close()


def test_the_cli_creates_the_data_folder_0700(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from service.cli.main import app

    data = tmp_path / "fresh"
    answer = CliRunner().invoke(app, ["db", "upgrade", "--data-dir", str(data)])
    assert answer.exit_code == 0, answer.output
    assert mode(data) == 0o700
    assert mode(data / "airlock.db") == 0o600
